"""Operator policy (executor/policy.py): the exact reasons and messages a user and an operator see.

The image message is JES's own text (keptn-contrib/job-executor-service: pkg/utils/imagefilterlist.go).
"""

from __future__ import annotations

import logging

import pytest

from executor.policy import PolicyError, check_image, check_privileged, privileged_reason, warn_if_open


@pytest.mark.parametrize(
    ("context", "reason"),
    [
        ({"privileged": True}, "privileged: true"),
        ({"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation: true"),
        ({"capabilities": {"add": ["ALL"]}}, "every capability (capabilities.add: ALL)"),
        ({"capabilities": {"add": ["cap_sys_admin"]}}, "the capability SYS_ADMIN"),
        ({"capabilities": {"add": ["NET_BIND_SERVICE"]}}, None),
        ({"privileged": False, "allowPrivilegeEscalation": False}, None),
    ],
)
def test_privileged_reason_texts(context: dict[str, object], reason: str | None) -> None:
    assert privileged_reason(context) == reason


def test_refusal_message_is_exact() -> None:
    with pytest.raises(ValueError) as info:
        check_privileged("build", {"privileged": True}, allow=False)
    assert str(info.value) == (
        "Forbidden: task 'build' asks for privileged: true, but privileged jobs are not "
        "allowed (set ALLOW_PRIVILEGED_JOBS=true to permit them)"
    )


def test_allowed_privilege_is_logged_with_task_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="executor.policy"):
        check_privileged("build", {"privileged": True}, allow=True)
    assert caplog.messages == ["task 'build' runs with privileged: true (ALLOW_PRIVILEGED_JOBS is set)"]


def test_open_image_list_warning_text(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="executor.policy"):
        warn_if_open(())
    assert caplog.messages == ["ALLOWED_IMAGE_LIST is empty or '*': every image may run; set a list of globs"]


def test_forbidden_image_message_is_jes_text() -> None:
    with pytest.raises(ValueError) as info:
        check_image("docker.io/evil/miner", ("docker.io/good/*",))
    assert (
        str(info.value) == "Forbidden: Image docker.io/evil/miner does not match configured image allowlist."
    )


# Issue 13 item 10: the Pod Security Standard "baseline", unless ALLOW_PRIVILEGED_JOBS.
@pytest.mark.parametrize(
    ("context", "annotations", "rule"),
    [
        ({"runAsUser": 0, "capabilities": {"add": ["SYS_MODULE"]}}, {}, "'Capabilities'"),
        ({"runAsUser": 0, "capabilities": {"add": ["SYS_PTRACE"]}}, {}, "'Capabilities'"),
        ({"capabilities": {"add": ["NET_ADMIN", "BPF"]}}, {}, "BPF, NET_ADMIN"),
        ({"capabilities": {"add": ["DAC_READ_SEARCH"]}}, {}, "'Capabilities'"),
        ({"seLinuxOptions": {"type": "spc_t"}}, {}, "'SELinux'"),
        ({"seccompProfile": {"type": "Unconfined"}}, {}, "'Seccomp'"),
        ({"appArmorProfile": {"type": "Unconfined"}}, {}, "'AppArmor'"),
        ({"procMount": "Unmasked"}, {}, "'/proc Mount Type'"),
        ({"windowsOptions": {"hostProcess": True}}, {}, "'HostProcess'"),
        ({}, {"container.apparmor.security.beta.kubernetes.io/task": "unconfined"}, "'AppArmor'"),
        ({}, {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}, "'Seccomp'"),
    ],
)
def test_baseline_violations_are_refused_naming_the_rule(
    context: dict[str, object], annotations: dict[str, str], rule: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        check_privileged("t", context, False, annotations)
    assert rule in str(caught.value) and "baseline" in str(caught.value)
    assert "ALLOW_PRIVILEGED_JOBS=true" in str(caught.value)
    check_privileged("t", context, True, annotations)  # allowed: only logged


@pytest.mark.parametrize(
    ("context", "annotations"),
    [
        ({"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"]}}, {}),
        ({"seLinuxOptions": {"type": "container_t"}, "seccompProfile": {"type": "RuntimeDefault"}}, {}),
        ({"procMount": "Default"}, {"container.apparmor.security.beta.kubernetes.io/t": "runtime/default"}),
    ],
)
def test_what_baseline_allows_passes(context: dict[str, object], annotations: dict[str, str]) -> None:
    check_privileged("t", context, False, annotations)
