"""Operator policy (executor/policy.py): the exact reasons and messages a user and an operator see.

The image message is JES's own text (keptn-contrib/job-executor-service: pkg/utils/imagefilterlist.go).
"""

from __future__ import annotations

import logging

import pytest

from executor.policy import check_image, check_privileged, privileged_reason, warn_if_open


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
