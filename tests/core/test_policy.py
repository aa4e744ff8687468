"""Operator policy (executor/policy.py): the exact reasons and messages a user and an operator see.

The image message is JES's own text (keptn-contrib/job-executor-service: pkg/utils/imagefilterlist.go).
The baseline rules are those of the Pod Security Standards, as the API server's admission checks
them (kubernetes/kubernetes: staging/src/k8s.io/pod-security-admission/policy/check_*.go).
"""

from __future__ import annotations

import logging

import pytest

from executor.policy import (
    PolicyError,
    check_image,
    check_operator_contexts,
    check_privileged,
    check_supply_chain,
    privileged_reason,
    warn_if_open,
)
from executor.settings import Settings
from executor.support.envvars import SettingsError


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


# --- the baseline refusal names each control and what in the task breaks it ---------------


def _refusal(context: dict[str, object], annotations: dict[str, str] | None = None) -> str:
    with pytest.raises(PolicyError) as caught:
        check_privileged("t", context, False, annotations)
    return str(caught.value)


@pytest.mark.parametrize(
    ("context", "annotations", "named"),
    [
        (
            {"windowsOptions": {"hostProcess": True}},
            {},
            "windowsOptions.hostProcess: true (baseline rule 'HostProcess')",
        ),
        ({"seLinuxOptions": {"type": "spc_t"}}, {}, "seLinuxOptions.type: spc_t (baseline rule 'SELinux')"),
        (
            {"seLinuxOptions": {"user": "system_u"}},
            {},
            "seLinuxOptions.user: system_u (baseline rule 'SELinux')",
        ),
        (
            {"seLinuxOptions": {"role": "sysadm_r"}},
            {},
            "seLinuxOptions.role: sysadm_r (baseline rule 'SELinux')",
        ),
        ({"procMount": "Unmasked"}, {}, "procMount: Unmasked (baseline rule '/proc Mount Type')"),
        (
            {"seccompProfile": {"type": "unconfined"}},
            {},
            "seccompProfile.type: Unconfined (baseline rule 'Seccomp')",
        ),
        (
            {},
            {"container.apparmor.security.beta.kubernetes.io/t": "unconfined"},
            "annotation container.apparmor.security.beta.kubernetes.io/t: unconfined (baseline rule 'AppArmor')",
        ),
        (
            {},
            {"container.seccomp.security.alpha.kubernetes.io/t": "Unconfined"},
            "annotation container.seccomp.security.alpha.kubernetes.io/t: Unconfined (baseline rule 'Seccomp')",
        ),
    ],
)
def test_a_baseline_refusal_is_exact(
    context: dict[str, object], annotations: dict[str, str], named: str
) -> None:
    assert _refusal(context, annotations) == (
        f"Forbidden: task 't' asks for {named}, which the Pod Security Standard 'baseline' forbids "
        "(set ALLOW_PRIVILEGED_JOBS=true to permit it)"
    )


def test_every_broken_rule_is_named_in_one_refusal() -> None:
    context = {"seLinuxOptions": {"user": "system_u", "role": "sysadm_r"}, "procMount": "Unmasked"}
    assert _refusal(context) == (
        "Forbidden: task 't' asks for seLinuxOptions.user: system_u (baseline rule 'SELinux'); "
        "seLinuxOptions.role: sysadm_r (baseline rule 'SELinux'); "
        "procMount: Unmasked (baseline rule '/proc Mount Type'), which the Pod Security Standard "
        "'baseline' forbids (set ALLOW_PRIVILEGED_JOBS=true to permit it)"
    )


def test_allowed_rules_are_all_logged(caplog: pytest.LogCaptureFixture) -> None:
    context = {"privileged": True, "procMount": "Unmasked"}
    with caplog.at_level(logging.WARNING, logger="executor.policy"):
        check_privileged("build", context, allow=True)
    assert caplog.messages == [
        "task 'build' runs with privileged: true; procMount: Unmasked (baseline rule '/proc Mount Type') "
        "(ALLOW_PRIVILEGED_JOBS is set)"
    ]


@pytest.mark.parametrize(
    ("context", "annotations"),
    [
        # SELinux: only type, user and role are restricted; a level (MCS categories) is free, and
        # an empty type, user or role is the same as none (check_seLinuxOptions.go).
        ({"seLinuxOptions": {"level": "s0:c123,c456"}}, {}),
        ({"seLinuxOptions": {"type": "", "user": "", "role": ""}}, {}),
        ({"seLinuxOptions": {"type": "container_init_t"}}, {}),
        # Profiles other than Unconfined, and a profile that names no type.
        ({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}, {}),
        ({"appArmorProfile": {"type": "RuntimeDefault"}, "seccompProfile": {}}, {}),
        # AppArmor annotations may name a profile loaded on the node (check_appArmorProfile.go).
        ({}, {"container.apparmor.security.beta.kubernetes.io/t": "localhost/k8s-apparmor-example"}),
        # An empty value is allowed too (allowedAnnotationValue: len(profile) == 0).
        ({}, {"container.apparmor.security.beta.kubernetes.io/t": ""}),
        # Legacy seccomp annotations are refused only when unconfined; other annotations are free.
        ({}, {"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}),
        ({}, {"example.com/mode": "unconfined"}),
    ],
)
def test_more_that_baseline_allows_passes(context: dict[str, object], annotations: dict[str, str]) -> None:
    check_privileged("t", context, False, annotations)


# --- REQUIRE_IMAGE_DIGEST and ALLOW_LATEST_TAG (both off by default, as in JES) --------------

DIGEST = "sha256:" + "a" * 64


def _supply_refusal(image: str, *, require_digest: bool = False, allow_latest: bool = True) -> str:
    with pytest.raises(PolicyError) as caught:
        check_supply_chain(image, require_digest=require_digest, allow_latest=allow_latest)
    return str(caught.value)


@pytest.mark.parametrize("image", ["alpine:3.20", "alpine", "ghcr.io/org/app:1.0", "alpine@md5:0123"])
def test_require_image_digest_refuses_what_is_not_pinned_saying_how_to_pin(image: str) -> None:
    assert _supply_refusal(image, require_digest=True) == (
        f"Forbidden: image {image} is not pinned by a digest (REQUIRE_IMAGE_DIGEST=true); "
        f"write it as {image}@sha256:<digest>"
    )


@pytest.mark.parametrize(
    "image", [f"alpine@{DIGEST}", f"alpine:3.20@{DIGEST}", f"localhost:5000/app@{DIGEST}"]
)
def test_require_image_digest_accepts_a_sha256_digest(image: str) -> None:
    check_supply_chain(image, require_digest=True, allow_latest=False)


@pytest.mark.parametrize(
    ("image", "what"),
    [
        ("alpine", "has no tag, which means :latest"),
        ("localhost:5000/app", "has no tag, which means :latest"),
        ("alpine:latest", "uses the tag :latest"),
        ("docker.io/library/alpine:latest", "uses the tag :latest"),
    ],
)
def test_allow_latest_tag_false_refuses_latest_and_untagged_naming_which(image: str, what: str) -> None:
    assert _supply_refusal(image, allow_latest=False) == (
        f"Forbidden: image {image} {what} (ALLOW_LATEST_TAG=false); "
        "name a fixed tag (such as :1.2.3) or a digest"
    )


@pytest.mark.parametrize(
    "image",
    [
        "alpine:3.20",
        "localhost:5000/app:1.0",
        "alpine:latest-1",
        f"alpine@{DIGEST}",
        f"alpine:latest@{DIGEST}",
    ],
)
def test_allow_latest_tag_false_accepts_a_fixed_tag_or_a_digest(image: str) -> None:
    check_supply_chain(image, require_digest=False, allow_latest=False)


@pytest.mark.parametrize("image", ["alpine", "alpine:latest", "alpine:3.20"])
def test_by_default_neither_rule_applies(image: str) -> None:
    check_supply_chain(image, require_digest=False, allow_latest=True)


# --- the operator's contexts, checked at start ------------------------------------------------


def test_an_operator_context_is_refused_at_start_with_every_problem_named() -> None:
    settings = Settings.from_env(
        {"JOB_SECURITY_CONTEXT": '{"privileged": true, "procMount": "Unmasked", "runAsUser": -1}'}
    )
    with pytest.raises(SettingsError) as caught:
        check_operator_contexts(settings.defaults, allow_privileged=False)
    assert str(caught.value) == (
        "JOB_SECURITY_CONTEXT: securityContext.runAsUser -1 must be between 0 and 2147483647, inclusive; "
        "asks for privileged: true; procMount: Unmasked (baseline rule '/proc Mount Type'), "
        "which tasks may not without ALLOW_PRIVILEGED_JOBS=true"
    )
