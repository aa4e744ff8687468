"""The Helm chart, rendered by the real Helm engine (helm-python-sdk, offline, no cluster).

Every rendered object, for the defaults and for each option turned on, is validated against the
official Kubernetes schemas; the tests then check what users rely on: only settings the program
reads, secrets only by reference, least-privilege RBAC, a grace period longer than the service's
own shutdown grace, a schema that refuses typos.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from executor.keptn.models import METADATA_ENV_VARS
from executor.settings import ENV_VARS, Settings
from executor.settings.running import DEFAULT_INIT_IMAGE, ResourceDefaults

# Read by the NATS source/sink, the Keptn subscription source and the HTTP sink that are being
# built in another issue; not in executor.settings.ENV_VARS yet. Move each name to ENV_VARS
# (and out of this list) when the code that reads it lands.
# Read by the Keptn client (the Go SDK's names), not by Settings: set from the downward API.
SENSITIVE_ENV_VARS = frozenset({"KEPTN_API_TOKEN", "RCV_AUTH_TOKEN"})

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "job-executor"
KUBERNETES_VERSION = "1.37.0"
RELEASE = "je"
NAMESPACE = "keptn"
FULLNAME = "je-job-executor"
IMAGE_REPOSITORY = "ghcr.io/job-executor/job-executor"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z][0-9A-Za-z.-]*)?$")

# Token values used by the cases below: they may appear (base64) in Secrets, nowhere else.
RCV_TOKEN = "rcv-token-must-not-leak-3f9a"
KEPTN_TOKEN = "keptn-token-must-not-leak-7c21"
KEPTN_ENDPOINT = "http://api-gateway-nginx.keptn"


def nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": 1, "a.c": 2} -> {"a": {"b": 1, "c": 2}}: overrides read like --set."""
    out: dict[str, Any] = {}
    for path, value in dotted.items():
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


# One entry per option of values.yaml (alone or with what it needs), plus the defaults.
CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "image-prerelease-tag": {"image.tag": "0.2.0-rc.1", "image.pullPolicy": "Always"},
    "image-digest": {"image.digest": "sha256:" + "ab" * 32},
    "image-pull-secrets": {"imagePullSecrets": [{"name": "ghcr-pull"}]},
    "init-container-image": {"initContainerImage": "registry.example/job-executor:0.1.0"},
    "name-overrides": {"nameOverride": "jx", "fullnameOverride": "custom-executor"},
    "replicas": {"replicaCount": 3, "leaderElection.enabled": True},
    "pdb-forced-on": {"podDisruptionBudget.enabled": True, "podDisruptionBudget.maxUnavailable": 1},
    "pdb-off-with-replicas": {
        "replicaCount": 2,
        "leaderElection.enabled": True,
        "podDisruptionBudget.enabled": False,
    },
    "pdb-percentage": {
        "replicaCount": 4,
        "leaderElection.enabled": True,
        "podDisruptionBudget.maxUnavailable": "25%",
    },
    "leader-election": {"replicaCount": 2, "leaderElection.enabled": True, "leaderElection.leaseSeconds": 6},
    "admission": {"admission.maxPendingJobs": 5, "admission.writeQps": 20, "admission.writeBurst": 40},
    "clusters": {
        "clusters": [
            {
                "name": "east",
                "kubeconfigSecret": "east-kube",
                "maxConcurrentJobs": 20,
                "labels": {"platform": "x86_64"},
            },
            {
                "name": "west",
                "kubeconfigSecret": "west-kube",
                "kubeconfigKey": "config",
                "context": "prod",
                "namespace": "jobs",
                "enabled": False,
                "priority": 1,
            },
            {"name": "here"},
        ]
    },
    "service-account-existing": {"serviceAccount.create": False, "serviceAccount.name": "ops"},
    "service-account-annotations": {
        "serviceAccount.annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}
    },
    "rbac-off": {"rbac.create": False},
    "job-namespace": {"jobConfig.namespace": "jobs"},
    "job-default-resources": {
        "jobConfig.defaultResources": {
            "limits": {"cpu": "", "memory": "1Gi"},
            "requests": {"cpu": "200m", "memory": "256Mi"},
        }
    },
    "allowed-images-string": {"jobConfig.allowedImageList": "docker.io/my-user/*,custom.io/*"},
    "allowed-images-list": {"jobConfig.allowedImageList": ["docker.io/my-user/*", "custom.io/*"]},
    "privileged-and-deadline": {
        "jobConfig.allowPrivilegedJobs": True,
        "jobConfig.taskDeadlineSeconds": 3600,
        "jobConfig.podStartGraceSeconds": 300,
    },
    "job-labels": {"jobConfig.labels": {"team": "qa", "tier": 1, "example.com/owner": "ops"}},
    "job-service-account-named": {"jobConfig.serviceAccount.name": "task-runner"},
    "job-service-account-existing": {
        "jobConfig.serviceAccount.create": False,
        "jobConfig.serviceAccount.name": "runner",
    },
    "job-service-account-none": {"jobConfig.serviceAccount.create": False},
    "job-network-policy": {
        "jobConfig.networkPolicy.enabled": True,
        "jobConfig.networkPolicy.blockCIDRs": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
    },
    "job-network-policy-no-blocks": {"jobConfig.networkPolicy.enabled": True},
    "task-defaults": {
        "jobConfig.defaultSecrets": ["registry-creds", "proxy-creds"],
        "jobConfig.extraEnv": {"HTTP_PROXY": "http://proxy:3128", "TEAM": "qa"},
        "jobConfig.allowedSecretList": ["ci-*", "shared"],
        "jobConfig.jobSecurityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": False},
        "jobConfig.podSecurityContext": {"fsGroup": 2000},
        "jobConfig.nodeSelector": {"pool": "jobs"},
        "jobConfig.tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "jobConfig.affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}
                    ]
                }
            }
        },
    },
    "allowed-secrets-string": {"jobConfig.allowedSecretList": "ci-*,shared"},
    "configs-files": {
        "configs.files": {
            "sockshop/dev/carts/job/config.yaml": "apiVersion: v2\nactions: []\n",
            "sockshop/dev/carts/locust/basic.py": "print('hi')\n",
            "sockshop/job/config.yaml": "apiVersion: v2\nactions: []\n",
        }
    },
    "configs-existing": {"configs.existingConfigMap": "my-job-configs"},
    "always-send-finished": {"alwaysSendFinishedEvent": True},
    "receiver-custom": {
        "receiver.port": 9090,
        "receiver.path": "/events",
        "receiver.host": "::",
        "receiver.maxBodyBytes": 4194304,
    },
    "receiver-token": {"receiver.authToken": RCV_TOKEN},
    "receiver-existing-secret": {
        "receiver.existingSecret": "rcv-auth",
        "receiver.existingSecretKey": "bearer",
    },
    "service-type": {"service.type": "NodePort", "service.annotations": {"a.example/b": "c"}},
    "observe": {
        "observe.logFormat": "json",
        "observe.logLevel": "debug",
        "observe.otlpEndpoint": "http://otel-collector.monitoring:4318",
        "observe.serviceName": "jes-prod",
        "observe.ui": "on",
    },
    "dispatcher": {
        "dispatcher.maxConcurrentRuns": 4,
        "dispatcher.queueSize": 50,
        "dispatcher.shutdownGraceSeconds": 300,
        "terminationGracePeriodSeconds": 330,
    },
    "keptn-token": {
        "keptn.enabled": True,
        "keptn.api.endpoint": KEPTN_ENDPOINT,
        "keptn.api.token": KEPTN_TOKEN,
        "keptn.subscriptions": ["sh.keptn.event.remote-task.triggered", "sh.keptn.event.test.*"],
    },
    "keptn-token-job-namespace": {
        "keptn.enabled": True,
        "keptn.api.endpoint": KEPTN_ENDPOINT,
        "keptn.api.token": KEPTN_TOKEN,
        "jobConfig.namespace": "jobs",
    },
    "keptn-existing-secret": {
        "keptn.enabled": True,
        "keptn.api.endpoint": KEPTN_ENDPOINT,
        "keptn.api.existingSecret": "keptn-api",
    },
    "keptn-existing-secret-job-namespace": {
        "keptn.enabled": True,
        "keptn.api.endpoint": KEPTN_ENDPOINT,
        "keptn.api.existingSecret": "keptn-api",
        "keptn.api.existingSecretKey": "keptn-api-token",
        "keptn.api.jobTokenSecret": "keptn-token-for-jobs",
        "jobConfig.namespace": "jobs",
    },
    "nats": {
        "nats.enabled": True,
        "nats.url": "nats://nats.messaging:4222",
        "nats.subjects": ["events.>", "keptn.test"],
        "nats.queueGroup": "executors",
        "nats.jetstream": True,
    },
    "sink": {"sink.url": "http://broker-ingress.knative-eventing/default/default"},
    "persistence": {"state.persistence.enabled": True, "state.persistence.storageClass": "fast"},
    "persistence-no-provisioner": {
        "state.persistence.enabled": True,
        "state.persistence.storageClass": "-",
    },
    "persistence-existing-claim": {
        "state.persistence.enabled": True,
        "state.persistence.existingClaim": "executor-state",
        "state.mountPath": "/state",
    },
    "network-policy-ingress-closed": {"networkPolicy.ingress.enabled": True},
    "network-policy-ingress-from": {
        "networkPolicy.ingress.enabled": True,
        "networkPolicy.ingress.from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keptn"}}}
        ],
    },
    "network-policy-egress": {
        "networkPolicy.egress.enabled": True,
        "networkPolicy.egress.apiServerCIDRs": ["172.20.0.1/32"],
        "networkPolicy.egress.extraRules": [
            {"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}], "ports": [{"port": 4222}]}
        ],
    },
    "network-policy-egress-any-apiserver": {"networkPolicy.egress.enabled": True},
    "pod-resources": {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {}}},
    "scheduling": {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ci"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "job-executor"}},
                        },
                    }
                ]
            }
        },
        "priorityClassName": "system-cluster-critical",
    },
    "pod-metadata": {
        "podAnnotations": {"prometheus.io/scrape": "true"},
        "podLabels": {"team": "platform"},
    },
    "security-context-override": {
        "podSecurityContext.runAsUser": 10001,
        "securityContext.readOnlyRootFilesystem": True,
    },
}
CASE_IDS = list(CASES)


# --- rendering --------------------------------------------------------------------------------


@functools.cache
def chart() -> helm.Chart:
    return helm.Chart.load(CHART_DIR)


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The objects of a release, in template order (NOTES.txt and empty documents left out)."""
    manifests = chart().render(values or {}, name=RELEASE, namespace=namespace)
    objects = []
    for path in sorted(manifests):
        if path.endswith((".yaml", ".yml")):
            objects.extend(doc for doc in yaml.safe_load_all(manifests[path]) if doc)
    return objects


@functools.cache
def _rendered_case(case: str) -> str:
    return json.dumps(render(nest(CASES[case])))


def rendered(case: str) -> list[dict[str, Any]]:
    """A case's objects; rendered once, a fresh copy for each test."""
    objects: list[dict[str, Any]] = json.loads(_rendered_case(case))
    return objects


def only(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = only(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_entries(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return container(objects).get("env", [])


def plain_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in env_entries(objects) if "value" in e}


def env_from_secret(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    (entry,) = [e for e in env_entries(objects) if e["name"] == name]
    assert "value" not in entry
    ref: dict[str, str] = entry["valueFrom"]["secretKeyRef"]
    return ref


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def failure(values: dict[str, Any]) -> helm.HelmError:
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    return caught.value


def pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


# --- every case -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASE_IDS)
def test_every_object_is_valid_kubernetes(case: str) -> None:
    objects = rendered(case)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        # Everything is namespaced and says where it goes: nothing cluster-wide.
        assert obj["metadata"]["namespace"], obj["metadata"]["name"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_sets_only_settings_the_program_reads(case: str) -> None:
    names = [e["name"] for e in env_entries(rendered(case))]
    assert len(names) == len(set(names)), "an env var is set twice"
    assert set(names) <= ENV_VARS | METADATA_ENV_VARS, set(names) - ENV_VARS - METADATA_ENV_VARS


@pytest.mark.parametrize("case", CASE_IDS)
def test_the_program_accepts_the_rendered_settings(case: str) -> None:
    objects = rendered(case)
    env = {e["name"]: e.get("value", "from-a-secret") for e in env_entries(objects)}
    settings = Settings.from_env({k: v for k, v in env.items() if k in ENV_VARS})
    assert settings.jobs.backend == "kubernetes"
    assert settings.receiver.host in {"0.0.0.0", "::"}
    state = next(m for m in container(objects)["volumeMounts"] if m["name"] == "state")
    assert str(settings.state.dir) == state["mountPath"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_secrets_only_by_reference(case: str) -> None:
    objects = rendered(case)
    for entry in env_entries(objects):
        if entry["name"] in SENSITIVE_ENV_VARS:
            assert set(entry) == {"name", "valueFrom"}
            assert set(entry["valueFrom"]) == {"secretKeyRef"}
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        for token in (RCV_TOKEN, KEPTN_TOKEN):
            assert token not in text, f"token in {obj['kind']} {obj['metadata']['name']}"
            assert base64.b64encode(token.encode()).decode() not in text


@pytest.mark.parametrize("case", CASE_IDS)
def test_rbac_is_namespaced_and_never_reads_secrets(case: str) -> None:
    objects = rendered(case)
    assert not only(objects, "ClusterRole") and not only(objects, "ClusterRoleBinding")
    for role in only(objects, "Role"):
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"]
            assert "*" not in rule["resources"] and "*" not in rule["verbs"]
            assert "*" not in rule["apiGroups"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_job_service_account_has_no_token_and_no_role(case: str) -> None:
    objects = rendered(case)
    job_sa = plain_env(objects).get("DEFAULT_JOB_SERVICE_ACCOUNT")
    service_sa = one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    assert job_sa != service_sa
    for account in only(objects, "ServiceAccount"):
        if account["metadata"]["name"] == job_sa:
            assert account["automountServiceAccountToken"] is False
    for binding in only(objects, "RoleBinding"):
        assert [s["name"] for s in binding["subjects"]] == [service_sa]


@pytest.mark.parametrize("case", CASE_IDS)
def test_grace_period_outlasts_the_service_shutdown(case: str) -> None:
    objects = rendered(case)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    shutdown_grace = int(plain_env(objects)["SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > shutdown_grace


@pytest.mark.parametrize("case", CASE_IDS)
def test_pod_is_locked_down(case: str) -> None:
    objects = rendered(case)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    security = container(objects)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    writable = {m["mountPath"] for m in container(objects)["volumeMounts"] if not m.get("readOnly")}
    assert "/tmp" in writable


# --- defaults ---------------------------------------------------------------------------------


def test_default_objects() -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in rendered("defaults"))
    assert kinds == [
        ("ConfigMap", f"{FULLNAME}-configs"),
        ("Deployment", FULLNAME),
        ("Role", FULLNAME),
        ("RoleBinding", FULLNAME),
        ("Service", FULLNAME),
        ("ServiceAccount", FULLNAME),
        ("ServiceAccount", f"{FULLNAME}-job"),
    ]


def test_default_settings() -> None:
    objects = rendered("defaults")
    image = f"{IMAGE_REPOSITORY}:{pyproject_version()}"
    assert container(objects)["image"] == image
    assert container(objects)["args"] == ["serve"]
    assert plain_env(objects) == {
        "BACKEND": "kubernetes",
        "JOB_NAMESPACE": NAMESPACE,
        "INIT_CONTAINER_IMAGE": image,
        "DEFAULT_RESOURCE_LIMITS_CPU": "1",
        "DEFAULT_RESOURCE_LIMITS_MEMORY": "512Mi",
        "DEFAULT_RESOURCE_REQUESTS_CPU": "50m",
        "DEFAULT_RESOURCE_REQUESTS_MEMORY": "128Mi",
        "DEFAULT_JOB_SERVICE_ACCOUNT": f"{FULLNAME}-job",
        "ALLOWED_IMAGE_LIST": "",
        "ALLOW_PRIVILEGED_JOBS": "false",
        "TASK_DEADLINE_SECONDS": "0",
        "POD_START_GRACE_SECONDS": "60",
        "CONFIG_SOURCE": "local",
        "CONFIG_DIR": "/etc/job-executor/configs",
        "ALWAYS_SEND_FINISHED_EVENT": "false",
        "RCV_HOST": "0.0.0.0",
        "RCV_PORT": "8080",
        "RCV_PATH": "/",
        "MAX_BODY_BYTES": "1048576",
        "MAX_CONCURRENT_RUNS": "16",
        "MAX_CONCURRENT_TASKS": "0",
        "QUEUE_SIZE": "1000",
        "SHUTDOWN_GRACE_SECONDS": "120",
        "STATE_DIR": "/var/lib/job-executor",
        "STATE_RETENTION_HOURS": "168",
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "info",
        "UI": "auto",
        "MAX_PENDING_JOBS": "0",
        "KUBE_WRITE_QPS": "0",
        "KUBE_WRITE_BURST": "10",
    }
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 150


def test_defaults_agree_with_the_program() -> None:
    """Where the chart keeps the program's defaults, both say the same."""
    settings = Settings()
    values = chart().values
    resources = values["jobConfig"]["defaultResources"]
    assert (
        ResourceDefaults(
            limits_cpu=resources["limits"]["cpu"],
            limits_memory=resources["limits"]["memory"],
            requests_cpu=resources["requests"]["cpu"],
            requests_memory=resources["requests"]["memory"],
        )
        == ResourceDefaults()
    )
    assert values["receiver"]["port"] == settings.receiver.port
    assert values["receiver"]["path"] == settings.receiver.path
    assert values["receiver"]["maxBodyBytes"] == settings.receiver.max_body_bytes
    assert values["dispatcher"]["maxConcurrentRuns"] == settings.dispatch.max_concurrent_runs
    assert values["dispatcher"]["queueSize"] == settings.dispatch.queue_size
    assert values["state"]["retentionHours"] == settings.state.retention_hours
    assert values["jobConfig"]["allowPrivilegedJobs"] == settings.jobs.allow_privileged
    assert values["jobConfig"]["taskDeadlineSeconds"] == settings.jobs.deadline_seconds
    assert values["jobConfig"]["podStartGraceSeconds"] == settings.kubernetes.pod_start_grace_seconds
    assert values["image"]["repository"] == DEFAULT_INIT_IMAGE.rpartition(":")[0]


def test_state_is_an_empty_dir_by_default() -> None:
    objects = rendered("defaults")
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state"] == {"name": "state", "emptyDir": {}}
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "state")
    assert mount["mountPath"] == plain_env(objects)["STATE_DIR"]
    assert "strategy" not in one(objects, "Deployment")["spec"]


def test_rbac_rules() -> None:
    role = one(rendered("defaults"), "Role")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("batch",), ("jobs",)): {"create", "get", "list", "watch", "delete"},
        # The ConfigMap of staged files created beside each Job (executor/backends/kubernetes/render.py).
        (("",), ("configmaps",)): {"create", "get", "list", "patch", "delete"},
        (("",), ("pods",)): {"get", "list", "watch"},
        (("",), ("pods/log",)): {"get"},
        (("",), ("events",)): {"get", "list", "watch"},
    }
    binding = one(rendered("defaults"), "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": FULLNAME,
    }


def test_service_and_probes_use_the_receiver_port() -> None:
    for case, port in (("defaults", 8080), ("receiver-custom", 9090)):
        objects = rendered(case)
        (service_port,) = one(objects, "Service")["spec"]["ports"]
        assert service_port == {
            "name": "http",
            "port": port,
            "targetPort": "http",
            "protocol": "TCP",
        }
        (container_port,) = container(objects)["ports"]
        assert container_port == {"name": "http", "containerPort": port, "protocol": "TCP"}
        assert plain_env(objects)["RCV_PORT"] == str(port)
        live, ready = container(objects)["livenessProbe"], container(objects)["readinessProbe"]
        assert live["httpGet"] == {"path": "/healthz", "port": "http"}
        assert ready["httpGet"] == {"path": "/readyz", "port": "http"}
    assert plain_env(rendered("receiver-custom"))["RCV_PATH"] == "/events"
    assert plain_env(rendered("receiver-custom"))["RCV_HOST"] == "::"


# --- chart metadata ---------------------------------------------------------------------------


def test_app_version_is_the_package_version() -> None:
    metadata = chart().metadata
    assert metadata["appVersion"] == pyproject_version()
    assert SEMVER.match(metadata["version"]), metadata["version"]
    assert metadata["apiVersion"] == "v2"
    assert metadata["name"] == "job-executor"


def test_image_tag_defaults_to_app_version_and_takes_prereleases() -> None:
    assert chart().values["image"]["tag"] == ""
    assert container(rendered("image-prerelease-tag"))["image"] == f"{IMAGE_REPOSITORY}:0.2.0-rc.1"
    assert plain_env(rendered("image-prerelease-tag"))["INIT_CONTAINER_IMAGE"] == (
        f"{IMAGE_REPOSITORY}:0.2.0-rc.1"
    )
    digest = CASES["image-digest"]["image.digest"]
    assert container(rendered("image-digest"))["image"] == f"{IMAGE_REPOSITORY}@{digest}"
    init = plain_env(rendered("init-container-image"))["INIT_CONTAINER_IMAGE"]
    assert init == "registry.example/job-executor:0.1.0"


def test_helm_lint_is_clean() -> None:
    report = helm.lint(CHART_DIR, strict=True)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


# --- options ----------------------------------------------------------------------------------


def test_job_namespace() -> None:
    objects = rendered("job-namespace")
    assert plain_env(objects)["JOB_NAMESPACE"] == "jobs"
    where = {(o["kind"], o["metadata"]["name"]): o["metadata"]["namespace"] for o in objects}
    assert where[("Role", FULLNAME)] == "jobs"
    assert where[("RoleBinding", FULLNAME)] == "jobs"
    assert where[("ServiceAccount", f"{FULLNAME}-job")] == "jobs"
    assert where[("ServiceAccount", FULLNAME)] == NAMESPACE
    assert where[("Deployment", FULLNAME)] == NAMESPACE
    (subject,) = one(objects, "RoleBinding")["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}


def test_job_settings() -> None:
    env = plain_env(rendered("job-default-resources"))
    assert env["DEFAULT_RESOURCE_LIMITS_CPU"] == ""  # no CPU limit
    assert env["DEFAULT_RESOURCE_LIMITS_MEMORY"] == "1Gi"
    assert env["DEFAULT_RESOURCE_REQUESTS_CPU"] == "200m"
    assert env["DEFAULT_RESOURCE_REQUESTS_MEMORY"] == "256Mi"
    for case in ("allowed-images-string", "allowed-images-list"):
        assert plain_env(rendered(case))["ALLOWED_IMAGE_LIST"] == "docker.io/my-user/*,custom.io/*"
    env = plain_env(rendered("privileged-and-deadline"))
    assert (env["ALLOW_PRIVILEGED_JOBS"], env["TASK_DEADLINE_SECONDS"]) == ("true", "3600")
    assert env["POD_START_GRACE_SECONDS"] == "300"
    assert plain_env(rendered("job-labels"))["JOB_LABELS"] == "example.com/owner=ops,team=qa,tier=1"
    assert "JOB_LABELS" not in plain_env(rendered("defaults"))
    assert plain_env(rendered("always-send-finished"))["ALWAYS_SEND_FINISHED_EVENT"] == "true"


def test_task_defaults_and_placement_reach_the_service() -> None:
    """Issue 15 items 4-6: each value becomes its setting, and the program reads it back."""
    env = plain_env(rendered("task-defaults"))
    assert env["JOB_DEFAULT_SECRETS"] == "registry-creds,proxy-creds"
    assert env["ALLOWED_SECRET_LIST"] == "ci-*,shared"
    assert plain_env(rendered("allowed-secrets-string"))["ALLOWED_SECRET_LIST"] == "ci-*,shared"
    settings = Settings.from_env({k: v for k, v in env.items() if k in ENV_VARS}).defaults
    assert dict(settings.extra_env) == {"HTTP_PROXY": "http://proxy:3128", "TEAM": "qa"}
    assert dict(settings.security_context) == {"runAsUser": 1000, "readOnlyRootFilesystem": False}
    assert dict(settings.pod_security_context) == {"fsGroup": 2000}
    assert dict(settings.node_selector) == {"pool": "jobs"}
    assert settings.tolerations == ({"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},)
    assert set(dict(settings.affinity)) == {"nodeAffinity"}
    assert settings.allowed_secrets == ("ci-*", "shared")
    # Unset by default: the program's own defaults apply.
    defaults = plain_env(rendered("defaults"))
    names = ("JOB_DEFAULT_SECRETS", "JOB_EXTRA_ENV", "ALLOWED_SECRET_LIST", "JOB_SECURITY_CONTEXT")
    names += ("JOB_POD_SECURITY_CONTEXT", "JOB_NODE_SELECTOR", "JOB_TOLERATIONS", "JOB_AFFINITY")
    assert not set(names) & set(defaults)


def test_job_service_account_options() -> None:
    objects = rendered("job-service-account-named")
    assert plain_env(objects)["DEFAULT_JOB_SERVICE_ACCOUNT"] == "task-runner"
    assert "task-runner" in [a["metadata"]["name"] for a in only(objects, "ServiceAccount")]
    # An existing account is named, not created; with none the namespace default is used.
    objects = rendered("job-service-account-existing")
    assert plain_env(objects)["DEFAULT_JOB_SERVICE_ACCOUNT"] == "runner"
    assert [a["metadata"]["name"] for a in only(objects, "ServiceAccount")] == [FULLNAME]
    assert "DEFAULT_JOB_SERVICE_ACCOUNT" not in plain_env(rendered("job-service-account-none"))


def test_service_account_and_rbac_options() -> None:
    objects = rendered("service-account-existing")
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"
    assert [a["metadata"]["name"] for a in only(objects, "ServiceAccount")] == [f"{FULLNAME}-job"]
    assert one(objects, "RoleBinding")["subjects"][0]["name"] == "ops"
    objects = rendered("rbac-off")
    assert not only(objects, "Role") and not only(objects, "RoleBinding")


def test_pod_disruption_budget() -> None:
    assert not only(rendered("defaults"), "PodDisruptionBudget")
    assert one(rendered("replicas"), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert one(rendered("pdb-forced-on"), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert not only(rendered("pdb-off-with-replicas"), "PodDisruptionBudget")
    assert one(rendered("pdb-percentage"), "PodDisruptionBudget")["spec"]["maxUnavailable"] == "25%"
    pdb = one(rendered("replicas"), "PodDisruptionBudget")
    template = one(rendered("replicas"), "Deployment")["spec"]["template"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()


def test_receiver_token_from_a_created_secret() -> None:
    objects = rendered("receiver-token")
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == FULLNAME
    assert base64.b64decode(secret["data"]["rcv-auth-token"]).decode() == RCV_TOKEN
    ref = env_from_secret(objects, "RCV_AUTH_TOKEN")
    assert ref == {"name": FULLNAME, "key": "rcv-auth-token"}


def test_receiver_token_from_an_existing_secret() -> None:
    objects = rendered("receiver-existing-secret")
    assert not only(objects, "Secret")
    assert env_from_secret(objects, "RCV_AUTH_TOKEN") == {"name": "rcv-auth", "key": "bearer"}
    assert "RCV_AUTH_TOKEN" not in {e["name"] for e in env_entries(rendered("defaults"))}


def test_keptn_control_plane_with_a_token_value() -> None:
    objects = rendered("keptn-token")
    env = plain_env(objects)
    assert env["CONFIG_SOURCE"] == "keptn"
    assert env["KEPTN_API_ENDPOINT"] == KEPTN_ENDPOINT
    assert env["PUBSUB_TOPIC"] == "sh.keptn.event.remote-task.triggered,sh.keptn.event.test.*"
    assert "CONFIG_DIR" not in env
    secret_name = f"{FULLNAME}-keptn-api-token"
    assert env_from_secret(objects, "KEPTN_API_TOKEN") == {"name": secret_name, "key": "token"}
    assert env["KEPTN_API_TOKEN_SECRET"] == secret_name
    (secret,) = only(objects, "Secret")
    assert secret["metadata"] == secret["metadata"] | {"name": secret_name, "namespace": NAMESPACE}
    assert base64.b64decode(secret["data"]["token"]).decode() == KEPTN_TOKEN
    # No local config tree with the Keptn config source.
    assert not only(objects, "ConfigMap")
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert "configs" not in [v["name"] for v in volumes]


def test_keptn_token_reaches_the_job_namespace() -> None:
    """Job init containers read the token from a Secret in their own namespace."""
    objects = rendered("keptn-token-job-namespace")
    secrets = {s["metadata"]["namespace"]: s for s in only(objects, "Secret")}
    assert set(secrets) == {NAMESPACE, "jobs"}
    assert {s["metadata"]["name"] for s in secrets.values()} == {f"{FULLNAME}-keptn-api-token"}
    assert plain_env(objects)["KEPTN_API_TOKEN_SECRET"] == f"{FULLNAME}-keptn-api-token"


def test_keptn_control_plane_with_existing_secrets() -> None:
    objects = rendered("keptn-existing-secret")
    assert not only(objects, "Secret")
    assert env_from_secret(objects, "KEPTN_API_TOKEN") == {"name": "keptn-api", "key": "token"}
    assert plain_env(objects)["KEPTN_API_TOKEN_SECRET"] == "keptn-api"
    objects = rendered("keptn-existing-secret-job-namespace")
    assert not only(objects, "Secret")
    ref = env_from_secret(objects, "KEPTN_API_TOKEN")
    assert ref == {"name": "keptn-api", "key": "keptn-api-token"}
    assert plain_env(objects)["KEPTN_API_TOKEN_SECRET"] == "keptn-token-for-jobs"


def test_nats_and_sink() -> None:
    env = plain_env(rendered("nats"))
    assert {k: env[k] for k in env if k.startswith("NATS_")} == {
        "NATS_URL": "nats://nats.messaging:4222",
        "NATS_SUBJECTS": "events.>,keptn.test",
        "NATS_QUEUE_GROUP": "executors",
        "NATS_JETSTREAM": "true",
    }
    assert not [k for k in plain_env(rendered("defaults")) if k.startswith("NATS_")]
    sink = CASES["sink"]["sink.url"]
    assert plain_env(rendered("sink"))["K_SINK"] == sink
    assert "K_SINK" not in plain_env(rendered("defaults"))


def test_persistent_state() -> None:
    objects = rendered("persistence")
    claim = one(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == f"{FULLNAME}-state"
    assert claim["spec"]["storageClassName"] == "fast"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"] == {"claimName": f"{FULLNAME}-state"}
    claim = one(rendered("persistence-no-provisioner"), "PersistentVolumeClaim")
    assert claim["spec"]["storageClassName"] == ""
    objects = rendered("persistence-existing-claim")
    assert not only(objects, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"] == {"claimName": "executor-state"}
    assert plain_env(objects)["STATE_DIR"] == "/state"


def test_config_files_are_mounted_at_their_paths() -> None:
    objects = rendered("configs-files")
    data = one(objects, "ConfigMap")["data"]
    volume = next(
        v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "configs"
    )
    mounted = {item["path"]: data[item["key"]] for item in volume["configMap"]["items"]}
    assert mounted == CASES["configs-files"]["configs.files"]
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "configs")
    assert mount["mountPath"] == plain_env(objects)["CONFIG_DIR"]
    assert mount["readOnly"] is True


def test_config_keys_of_similar_paths_differ() -> None:
    files = {"a/b.yaml": "1", "a_b.yaml": "2", "a.b.yaml": "3"}
    data = one(render({"configs": {"files": files}}), "ConfigMap")["data"]
    assert sorted(data.values()) == ["1", "2", "3"]


def test_existing_config_map_is_mounted_as_it_is() -> None:
    objects = rendered("configs-existing")
    assert not only(objects, "ConfigMap")
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == "configs"]
    assert volume["configMap"] == {"name": "my-job-configs"}


def test_job_network_policy() -> None:
    policy = one(rendered("job-network-policy"), "NetworkPolicy")
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "job-executor"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == []
    anywhere, dns = spec["egress"]
    assert anywhere == {
        "to": [
            {
                "ipBlock": {
                    "cidr": "0.0.0.0/0",
                    "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
                }
            }
        ]
    }
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    spec = one(rendered("job-network-policy-no-blocks"), "NetworkPolicy")["spec"]
    assert spec["egress"][0] == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
    assert not only(rendered("defaults"), "NetworkPolicy")


def test_job_network_policy_follows_the_job_namespace() -> None:
    values = nest({"jobConfig.networkPolicy.enabled": True, "jobConfig.namespace": "jobs"})
    assert one(render(values), "NetworkPolicy")["metadata"]["namespace"] == "jobs"


def test_service_network_policies() -> None:
    spec = one(rendered("network-policy-ingress-closed"), "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == []  # no peers: nothing gets in
    assert "egress" not in spec
    spec = one(rendered("network-policy-ingress-from"), "NetworkPolicy")["spec"]
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == CASES["network-policy-ingress-from"]["networkPolicy.ingress.from"]
    spec = one(rendered("network-policy-egress"), "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Egress"]
    dns, api_server, extra = spec["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert api_server["to"] == [{"ipBlock": {"cidr": "172.20.0.1/32"}}]
    assert {p["port"] for p in api_server["ports"]} == {443, 6443}
    assert extra == CASES["network-policy-egress"]["networkPolicy.egress.extraRules"][0]
    spec = one(rendered("network-policy-egress-any-apiserver"), "NetworkPolicy")["spec"]
    assert "to" not in spec["egress"][1]


def test_pod_options() -> None:
    pod = one(rendered("scheduling"), "Deployment")["spec"]["template"]["spec"]
    scheduling = CASES["scheduling"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[key] == scheduling[key]
    template = one(rendered("pod-metadata"), "Deployment")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["metadata"]["labels"]["team"] == "platform"
    resources = container(rendered("pod-resources"))["resources"]
    assert resources["limits"] == {"cpu": "1", "memory": "1Gi"}
    pod = one(rendered("image-pull-secrets"), "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert container(rendered("image-prerelease-tag"))["imagePullPolicy"] == "Always"
    assert one(rendered("replicas"), "Deployment")["spec"]["replicas"] == 3
    service = one(rendered("service-type"), "Service")
    assert service["spec"]["type"] == "NodePort"
    assert service["metadata"]["annotations"] == {"a.example/b": "c"}
    names = {o["metadata"]["name"] for o in rendered("name-overrides")}
    assert "custom-executor" in names


def test_pods_roll_when_a_token_or_a_config_changes() -> None:
    def annotations(values: dict[str, Any]) -> dict[str, str]:
        deployment = one(render(nest(values)), "Deployment")
        return dict(deployment["spec"]["template"]["metadata"]["annotations"])

    base = annotations({})
    assert annotations({"receiver.authToken": "a"}) != annotations({"receiver.authToken": "b"})
    assert annotations({"configs.files": {"p/job/config.yaml": "x"}}) != base


def test_observe_settings() -> None:
    env = plain_env(rendered("observe"))
    assert {k: env[k] for k in ("LOG_FORMAT", "LOG_LEVEL", "UI")} == {
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "debug",
        "UI": "on",
    }
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4318"
    assert env["OTEL_SERVICE_NAME"] == "jes-prod"
    settings = Settings.from_env(env)
    observe = settings.observe
    assert (observe.log_format, observe.log_level, observe.ui) == ("json", "debug", "on")
    assert (observe.otlp_endpoint, observe.service_name) == (env["OTEL_EXPORTER_OTLP_ENDPOINT"], "jes-prod")


def test_dispatcher_settings() -> None:
    objects = rendered("dispatcher")
    env = plain_env(objects)
    assert (env["MAX_CONCURRENT_RUNS"], env["QUEUE_SIZE"]) == ("4", "50")
    assert env["SHUTDOWN_GRACE_SECONDS"] == "300"
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 330


# --- refused values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"replicaCoutn": 2}, "replicaCoutn", id="unknown-top-level-key"),
        pytest.param({"image": {"tga": "0.1.0"}}, "tga", id="unknown-nested-key"),
        pytest.param({"jobConfig": {"allowedImages": "x"}}, "allowedImages", id="unknown-job-key"),
        pytest.param({"replicaCount": "two"}, "/replicaCount", id="replicas-string"),
        pytest.param({"receiver": {"port": "8080"}}, "/receiver/port", id="port-string"),
        pytest.param({"receiver": {"port": 70000}}, "/receiver/port", id="port-range"),
        pytest.param({"alwaysSendFinishedEvent": "yes"}, "/alwaysSendFinishedEvent", id="flag"),
        pytest.param(
            {"jobConfig": {"networkPolicy": {"blockCIDRs": "10.0.0.0/8"}}},
            "/jobConfig/networkPolicy/blockCIDRs",
            id="cidrs-not-a-list",
        ),
        pytest.param(
            {"jobConfig": {"networkPolicy": {"blockCIDRs": ["10.0.0.0"]}}},
            "/jobConfig/networkPolicy/blockCIDRs/0",
            id="cidr-without-prefix",
        ),
        pytest.param({"image": {"tag": "latest"}}, "/image/tag", id="tag-not-semver"),
        pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="policy"),
        pytest.param({"jobConfig": {"labels": {"a": ["b"]}}}, "/jobConfig/labels/a", id="label"),
        pytest.param(
            {"jobConfig": {"tolerations": [{"key": "a", "operator": "Exist"}]}},
            "/jobConfig/tolerations/0/operator",
            id="toleration-operator",
        ),
        pytest.param({"jobConfig": {"affinity": {"nodeAfinity": {}}}}, "nodeAfinity", id="affinity-key"),
        pytest.param(
            {"jobConfig": {"defaultSecrets": "a,b"}}, "/jobConfig/defaultSecrets", id="secrets-list"
        ),
        pytest.param({"jobConfig": {"extraEnv": {"A": 1}}}, "/jobConfig/extraEnv/A", id="extra-env-string"),
        pytest.param(
            {"jobConfig": {"podStartGraceSeconds": -1}},
            "/jobConfig/podStartGraceSeconds",
            id="pod-start-grace",
        ),
        pytest.param({"keptn": {"subscriptions": "a,b"}}, "/keptn/subscriptions", id="subs"),
        pytest.param({"nats": {"url": "http://nats:4222"}}, "/nats/url", id="nats-url"),
        pytest.param({"podDisruptionBudget": {"enabled": "auto"}}, "/podDisruptionBudget", id="pdb"),
        pytest.param({"receiver": {"path": "events"}}, "/receiver/path", id="relative-path"),
        pytest.param({"observe": {"logFormat": "yaml"}}, "/observe/logFormat", id="log-format"),
        pytest.param({"observe": {"logLevel": "trace"}}, "/observe/logLevel", id="log-level"),
        pytest.param({"observe": {"ui": True}}, "/observe/ui", id="ui-switch"),
        pytest.param({"observe": {"otlpEndpoint": "collector:4318"}}, "/observe/otlpEndpoint", id="otlp-url"),
    ],
)
def test_schema_refuses(values: dict[str, Any], message: str) -> None:
    error = failure(values)
    assert isinstance(error, helm.HelmValuesError), error
    assert message in str(error)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            {"terminationGracePeriodSeconds": 120},
            "must be longer than dispatcher.shutdownGraceSeconds",
            id="grace-not-longer-than-shutdown",
        ),
        pytest.param(
            {"state": {"persistence": {"enabled": True}}, "replicaCount": 2},
            "needs replicaCount 1",
            id="shared-state-file",
        ),
        pytest.param({"keptn": {"enabled": True}}, "keptn.api.endpoint", id="keptn-no-endpoint"),
        pytest.param(
            {"keptn": {"enabled": True, "api": {"endpoint": KEPTN_ENDPOINT}}},
            "keptn.api.existingSecret",
            id="keptn-no-token",
        ),
        pytest.param(
            nest(
                {
                    "keptn.enabled": True,
                    "keptn.api.endpoint": KEPTN_ENDPOINT,
                    "keptn.api.existingSecret": "keptn-api",
                    "jobConfig.namespace": "jobs",
                }
            ),
            "keptn.api.jobTokenSecret",
            id="keptn-no-token-for-jobs",
        ),
        pytest.param(
            {"receiver": {"authToken": "a", "existingSecret": "b"}},
            "not both",
            id="two-receiver-tokens",
        ),
        pytest.param({"nats": {"enabled": True}}, "nats.subjects", id="nats-no-subjects"),
        pytest.param(
            {"configs": {"files": {"../escape.yaml": "x"}}},
            "relative path inside the config tree",
            id="config-path-escapes",
        ),
        pytest.param(
            nest({"configs.files": {"a.yaml": "x"}, "configs.existingConfigMap": "c"}),
            "not both",
            id="two-config-sources",
        ),
    ],
)
def test_template_refuses(values: dict[str, Any], message: str) -> None:
    error = failure(values)
    assert message in str(error)


# --- values documentation ---------------------------------------------------------------------


def _schema_leaves(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if "properties" in sub:
            yield from _schema_leaves(sub, f"{path}.")
        else:
            yield path


def test_every_value_has_a_default_and_documentation() -> None:
    schema = chart().schema
    assert schema is not None
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    readme = (CHART_DIR / "README.md").read_text()
    for path in _schema_leaves(schema):
        if path == "global":  # set by Helm for subcharts, not a value of ours
            continue
        node: Any = defaults
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, f"{path}: no default in values.yaml"
            node = node[part]
        assert f"`{path}`" in readme, f"{path}: not documented in README.md"


def test_replicas_need_the_leader_election() -> None:
    error = failure({"replicaCount": 2})
    assert "leaderElection.enabled" in str(error)
    objects = rendered("leader-election")
    env = plain_env(objects)
    assert env["LEADER_ELECTION"] == "true" and env["LEADER_ELECTION_LEASE_SECONDS"] == "6"
    assert env["LEADER_ELECTION_LEASE_NAME"] == FULLNAME
    role = one(objects, "Role")
    assert {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "create", "update"],
    } in role["rules"]
    assert "LEADER_ELECTION" not in plain_env(rendered("defaults"))


def test_admission_values_become_settings() -> None:
    env = plain_env(rendered("admission"))
    assert (env["MAX_PENDING_JOBS"], env["KUBE_WRITE_QPS"], env["KUBE_WRITE_BURST"]) == ("5", "20", "40")


def test_clusters_file_from_a_configmap_and_kubeconfigs_from_secrets(tmp_path: Path) -> None:
    from executor.backends.kubernetes.clusterfile import read_clusters

    objects = rendered("clusters")
    env = plain_env(objects)
    assert env["CLUSTERS_FILE"] == "/etc/job-executor/clusters/clusters.yaml"
    configmap = next(o for o in only(objects, "ConfigMap") if o["metadata"]["name"] == f"{FULLNAME}-clusters")
    text = configmap["data"]["clusters.yaml"]
    path = tmp_path / "clusters.yaml"
    path.write_text(text)
    clusters = read_clusters(path, "keptn")  # the program reads what the chart writes
    east, west, here = clusters.members
    assert (
        east.kubeconfig == "/etc/job-executor/kubeconfigs/east/kubeconfig" and east.max_concurrent_jobs == 20
    )
    assert dict(east.labels) == {"platform": "x86_64"}
    assert (west.context, west.namespace, west.enabled, west.priority) == ("prod", "jobs", False, 1)
    assert here.kubeconfig == ""  # no Secret: the in-cluster config
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {
        "kubeconfig-east": {
            "secretName": "east-kube",
            "items": [{"key": "kubeconfig", "path": "kubeconfig"}],
        },
        "kubeconfig-west": {"secretName": "west-kube", "items": [{"key": "config", "path": "kubeconfig"}]},
    }
    mounts = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
    assert mounts["clusters"] == "/etc/job-executor/clusters"
    assert mounts["kubeconfig-east"] == "/etc/job-executor/kubeconfigs/east"
