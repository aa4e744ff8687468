"""Issue 13 item 16: what kube-apiserver refuses in a Job is refused before a Job is sent.

The rules that depend on the config alone are parse errors, so `lint` reports each at its line
and `serve` refuses the config (tests/kubernetes/test_server_rules.py runs each one end to end
against the fake API server, which refuses them as the API server does: tests/kubeapi/limits.py
and validation.py). The rules that depend on the event are checked when the task is planned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from executor.app.lint import lint_file
from executor.config.bounds import spec_problem
from executor.planner import PlanError, plan_action
from executor.settings import Settings
from executor.settings.running import ResourceDefaults
from executor.support.envvars import SettingsError

from .conftest import config, make_event, one_task

LONG_NAME = "a" * 64
LONG_SECRET = ".".join(["s" * 60] * 5)  # 304 characters, a valid subdomain otherwise

# (rule, the task's YAML lines after its name, the line of the mistake, what the message says).
# The task's `name` is on line 7 of one_task's config, so its first line here is line 8.
CONFIG_RULES = [
    (
        "annotation-name-part",
        f"image: alpine:3.20\nannotations:\n  example.com/{LONG_NAME}: x",
        10,
        "the name part after the '/' is 64 characters; Kubernetes allows at most 63",
    ),
    (
        "int32-ttl",
        "image: alpine:3.20\nttlSecondsAfterFinished: 3000000000",
        9,
        "'ttlSecondsAfterFinished' 3000000000 is over 2147483647, the largest value the Job API holds (int32)",
    ),
    (
        "int64-deadline",
        "image: alpine:3.20\nactiveDeadlineSeconds: 10000000000000000000",
        9,
        "'activeDeadlineSeconds' 10000000000000000000 is over 9223372036854775807",
    ),
    (
        "request-above-limit",
        "image: alpine:3.20\nresources:\n  limits: {cpu: 500m}\n  requests: {cpu: '1'}",
        11,
        "requests.cpu 1 is above limits.cpu 500m; Kubernetes refuses a request above its limit",
    ),
    (
        "unqualified-extended-resource",
        "image: alpine:3.20\nresources:\n  limits: {gpu: 1}",
        10,
        "'gpu' is not a standard resource (cpu, memory, ephemeral-storage, hugepages-<size>); "
        "an extended resource needs its domain, such as example.com/gpu",
    ),
    (
        "extended-resource-without-limit",
        "image: alpine:3.20\nresources:\n  requests: {example.com/gpu: 1}",
        10,
        "example.com/gpu cannot be overcommitted, so it needs limits.example.com/gpu too",
    ),
    (
        "extended-resource-unequal",
        "image: alpine:3.20\nresources:\n  limits: {example.com/gpu: 2}\n  requests: {example.com/gpu: 1}",
        11,
        "requests.example.com/gpu 1 differs from limits.example.com/gpu 2",
    ),
    (
        "run-as-user",
        "image: alpine:3.20\nsecurityContext:\n  runAsUser: -1",
        10,
        "securityContext.runAsUser -1 must be between 0 and 2147483647, inclusive",
    ),
    (
        "seccomp-localhost",
        "image: alpine:3.20\nsecurityContext:\n  seccompProfile: {type: Localhost}",
        10,
        "seccompProfile of type Localhost needs localhostProfile",
    ),
    (
        "namespace-dns-label",
        "image: alpine:3.20\nnamespace: Team_A",
        9,
        "namespace 'Team_A' is not a valid Kubernetes namespace name",
    ),
    (
        "secret-name-length",
        f"image: alpine:3.20\nenv:\n  - name: {LONG_SECRET}\n    valueFrom: secret",
        10,
        "is 304 characters; a Kubernetes Secret name has at most 253",
    ),
]


@pytest.mark.parametrize(("rule", "task", "line", "message"), CONFIG_RULES, ids=[r[0] for r in CONFIG_RULES])
def test_lint_reports_each_rule_at_its_line(
    tmp_path: Path, rule: str, task: str, line: int, message: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(one_task(task))
    found = [str(p) for p in lint_file(str(path), Settings())]
    assert any(text.startswith(f"{path}:{line}: ") and message in text for text in found), found


def test_values_at_the_bounds_are_accepted() -> None:
    config(
        one_task(
            f"""
            image: alpine:3.20
            ttlSecondsAfterFinished: 2147483647
            activeDeadlineSeconds: 9223372036854775807
            annotations: {{example.com/{"a" * 63}: x}}
            resources:
              limits: {{cpu: '1', memory: 1Gi, example.com/gpu: 2, hugepages-2Mi: 4Mi}}
              requests: {{cpu: 1000m, memory: 1024Mi, example.com/gpu: '2', hugepages-2Mi: 4Mi}}
            securityContext:
              runAsUser: 2147483647
              seccompProfile: {{type: Localhost, localhostProfile: profiles/audit.json}}
            env:
              - name: {".".join(["s" * 63] * 3 + ["s" * 61])}
                valueFrom: secret
            """
        )
    )


def test_default_requests_above_the_default_limits_are_refused_at_start() -> None:
    with pytest.raises(
        SettingsError,
        match=r"DEFAULT_RESOURCE_REQUESTS_MEMORY=1Gi is above DEFAULT_RESOURCE_LIMITS_MEMORY=512Mi",
    ):
        Settings.from_env({"DEFAULT_RESOURCE_REQUESTS_MEMORY": "1Gi"})
    with pytest.raises(
        SettingsError, match="DEFAULT_RESOURCE_REQUESTS_CPU=2 is above DEFAULT_RESOURCE_LIMITS_CPU=1"
    ):
        ResourceDefaults(requests_cpu="2")
    # Equal is fine; so is a request without a limit.
    Settings.from_env({"DEFAULT_RESOURCE_REQUESTS_CPU": "1000m", "DEFAULT_RESOURCE_LIMITS_MEMORY": ""})


# ---- what the event adds, checked by the planner ----

ECHO = "image: alpine:3.20\ncmd: [sh, -c, 'echo hi']"
AS_JSON = (
    "image: alpine:3.20\nenv:\n"
    "  - {name: ONE, valueFrom: event, value: $.data, as: json}\n"
    "  - {name: TWO, valueFrom: event, value: $.data, as: json}"
)


def test_a_large_event_source_is_refused_by_the_planner() -> None:
    cfg = config(one_task(ECHO))
    event = make_event(source="s" * 300_000)
    with pytest.raises(PlanError) as caught:
        plan_action(event, cfg.actions[0], cfg, Settings())
    message = str(caught.value)
    assert message.startswith("task 'task': its Job's annotations would take about ")
    assert (
        "the event source is 300000 bytes" in message and "over the 262144 bytes Kubernetes allows" in message
    )


def test_a_job_over_etcds_limit_is_refused_by_the_planner() -> None:
    cfg = config(one_task(AS_JSON))
    event = make_event(data={"project": "p", "stage": "s", "service": "c", "pad": "x" * 900_000})
    with pytest.raises(PlanError) as caught:
        plan_action(event, cfg.actions[0], cfg, Settings())
    assert "over the 1572864 bytes etcd stores in one object (1.5 MiB)" in str(caught.value)
    assert "the largest env value is ONE (900" in str(caught.value)


def test_what_fits_is_planned() -> None:
    cfg = config(one_task(AS_JSON))
    event = make_event(data={"project": "p", "stage": "s", "service": "c", "pad": "x" * 500_000})
    (spec,) = plan_action(event, cfg.actions[0], cfg, Settings())
    assert spec_problem(spec) == ""
    assert len(json.loads(dict((e.name, e.value) for e in spec.env)["ONE"])["pad"]) == 500_000


def test_job_labels_keys_are_bounded_as_kubernetes_bounds_them() -> None:
    prefix = ".".join(["p" * 63] * 4)  # 255 characters
    with pytest.raises(SettingsError, match="is not key=value with a label key"):
        Settings.from_env({"JOB_LABELS": f"{prefix}/team=qa"})
    with pytest.raises(SettingsError, match="is not key=value with a label key"):
        Settings.from_env({"JOB_LABELS": f"example.com/{'n' * 64}=qa"})
    ok = ".".join(["p" * 63] * 3 + ["p" * 61])  # 253
    assert Settings.from_env({"JOB_LABELS": f"{ok}/{'n' * 63}=qa"}).jobs.labels == (
        (f"{ok}/{'n' * 63}", "qa"),
    )
