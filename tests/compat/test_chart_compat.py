"""Issue 12, items 11 (chart part), 18 and 19: the Helm chart, rendered by the real Helm engine
(helm-python-sdk, offline), as tests/chart/test_chart.py does.

JES sources (keptn-contrib/job-executor-service): chart/values.yaml (the value names a JES user
has: remoteControlPlane.*, jobexecutorserviceinitcontainer.*, jobConfig.*, networkPolicy.*),
chart/templates/configmap.yaml (keptn_api_endpoint from remoteControlPlane.api),
chart/templates/networkpolicy.yaml (its egress always allowed the Keptn API gateway pods and
DNS), pkg/utils/labels.go (job labels validated with Kubernetes' ValidateLabels; here the
schema must do it before the pod starts).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "job-executor"
RELEASE, NAMESPACE = "je", "keptn"


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


def render_all(values: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """(objects, NOTES.txt) of a release with `values`."""
    manifests = chart().render(values, name=RELEASE, namespace=NAMESPACE)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            notes = manifests[path]
        elif path.endswith((".yaml", ".yml")):
            objects.extend(doc for doc in yaml.safe_load_all(manifests[path]) if doc)
    return objects, notes


def deployment_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def plain_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment_container(objects).get("env", []) if "value" in e}


# --- item 11 (chart): the service's own image -------------------------------------------------


@pytest.mark.parametrize(("tag", "policy"), [("0.2.0-rc.1", "Always"), ("0.2.0", "IfNotPresent")])
def test_item11_chart_pull_policy_follows_the_tag(tag: str, policy: str) -> None:
    objects, _ = render_all({"image": {"tag": tag}})
    assert deployment_container(objects)["imagePullPolicy"] == policy


# --- item 18: JES's value names ----------------------------------------------------------------

TOKEN = "jes-token-9d1e"

# (JES values, the new key a refusal must name, a check of the mapped result when accepted)
JES_VALUES: dict[str, tuple[dict[str, Any], str, Any]] = {
    "remote-control-plane": (
        {
            "remoteControlPlane": {
                "api": {"protocol": "http", "hostname": "api-gateway-nginx.keptn", "token": TOKEN},
                "topicSubscription": "sh.keptn.event.test.triggered,sh.keptn.event.deployment.triggered",
            }
        },
        "keptn.api.endpoint",
        lambda env: (
            env["KEPTN_API_ENDPOINT"] == "http://api-gateway-nginx.keptn/api"
            and env["PUBSUB_TOPIC"].split(",")
            == ["sh.keptn.event.test.triggered", "sh.keptn.event.deployment.triggered"]
        ),
    ),
    "init-container-image": (
        {
            "jobexecutorserviceinitcontainer": {
                "image": {"repository": "registry.example/init", "tag": "1.2.3"}
            }
        },
        "initContainerImage",
        lambda env: env["INIT_CONTAINER_IMAGE"] == "registry.example/init:1.2.3",
    ),
}


@pytest.mark.parametrize("case", list(JES_VALUES))
def test_item18_jes_value_names_are_mapped_or_named(case: str) -> None:
    values, new_key, check = JES_VALUES[case]
    try:
        objects, notes = render_all(values)
    except helm.HelmError as exc:
        assert new_key in str(exc), f"refused without naming {new_key}: {exc}"
        return
    assert check(plain_env(objects)), plain_env(objects)
    old_key = next(iter(values))
    assert old_key in notes and "deprecat" in notes.lower(), notes


def test_item18_chart_readme_has_a_migration_table() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    for old, new in (
        ("remoteControlPlane.api.hostname", "keptn.api.endpoint"),
        ("remoteControlPlane.topicSubscription", "keptn.subscriptions"),
        ("jobexecutorserviceinitcontainer.image", "initContainerImage"),
    ):
        rows = [line for line in readme.splitlines() if line.startswith("|") and old in line]
        assert rows and new in rows[0], f"no migration row {old} -> {new}"


# --- item 19 -----------------------------------------------------------------------------------


def test_item19_pdb_that_blocks_every_drain_is_refused() -> None:
    with pytest.raises(helm.HelmError) as caught:
        render_all({"replicaCount": 1, "podDisruptionBudget": {"enabled": True, "maxUnavailable": 0}})
    assert "maxUnavailable" in str(caught.value)


def egress_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
    objects, _ = render_all(values)
    rules = []
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        # jobConfig.networkPolicy (the policy of job pods) is off in these values: only the
        # service's own policy is here.
        if "Egress" in policy["spec"]["policyTypes"]:
            rules.extend(policy["spec"].get("egress", []))
    assert rules
    return rules


def allows_port(rules: list[dict[str, Any]], port: int) -> bool:
    """Some rule lets traffic out to `port` (a rule without ports allows every port)."""
    return any("ports" not in r or any(p.get("port") == port for p in r["ports"]) for r in rules)


def test_item19_egress_allows_the_keptn_api() -> None:
    rules = egress_rules(
        {
            "networkPolicy": {"egress": {"enabled": True}},
            "keptn": {
                "enabled": True,
                "api": {"endpoint": "http://api-gateway-nginx.keptn/api", "existingSecret": "k"},
            },
        }
    )
    assert allows_port(rules, 80), rules


def test_item19_egress_allows_nats() -> None:
    rules = egress_rules(
        {
            "networkPolicy": {"egress": {"enabled": True}},
            "nats": {"enabled": True, "url": "nats://keptn-nats.keptn:4222", "subjects": ["sh.keptn.>"]},
        }
    )
    assert allows_port(rules, 4222), rules


def test_item19_egress_without_peers_stays_closed() -> None:
    # Guard for the fix: with neither Keptn nor NATS nor a sink, no open-ended rule appears.
    rules = egress_rules(
        {"networkPolicy": {"egress": {"enabled": True, "apiServerCIDRs": ["172.20.0.1/32"]}}}
    )
    assert all("ports" in r for r in rules), rules


@pytest.mark.parametrize(
    "labels",
    [{"bad key!": "x"}, {"-leading": "x"}, {"team": "x" * 64}, {"team": "bad value!"}, {"a/b/c": "x"}],
    ids=["space", "leading-dash", "long-value", "bad-value", "two-slashes"],
)
def test_item19_bad_job_labels_fail_the_schema(labels: dict[str, str]) -> None:
    with pytest.raises(helm.HelmValuesError):
        render_all({"jobConfig": {"labels": labels}})


def test_item19_good_job_labels_pass() -> None:
    objects, _ = render_all(
        {"jobConfig": {"labels": {"team": "qa", "example.com/owner": "ops", "Some_Other": "V2"}}}
    )
    assert "JOB_LABELS" in plain_env(objects)
