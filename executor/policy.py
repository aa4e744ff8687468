"""Operator policy applied while planning (and by `lint`): which images may run, and which
security settings a task may ask for.

Images are compared with the allow-list as normalised references (config/images.py). Security
settings: with ALLOW_PRIVILEGED_JOBS=false a task may not ask for anything the Kubernetes Pod
Security Standard "baseline" forbids (kubernetes.io/docs/concepts/security/pod-security-standards,
whose control names the refusals quote); with it set, such tasks run and are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from executor.config.bounds import security_context_problems
from executor.config.glob import GlobError, compile_glob, glob_match
from executor.config.images import normalise_entry, normalise_image, parse_image
from executor.settings.tasks import TaskDefaults
from executor.support.envvars import SettingsError

log = logging.getLogger(__name__)


# Safe by default: non-root, no privilege escalation, no capabilities, a read-only root file
# system, the runtime's seccomp profile. Job containers start from it; init containers use it.
RESTRICTED_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

# Pod Security Standard "baseline": the capabilities a container may add, the SELinux types it
# may use; anything else is forbidden.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
BASELINE_SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_ANNOTATIONS = (
    "seccomp.security.alpha.kubernetes.io/pod",
    "container.seccomp.security.alpha.kubernetes.io/",
)


class PolicyError(ValueError):
    """The task may not run as written; the message is shown to the user in the finished event."""


def allows_everything(allowed: tuple[str, ...]) -> bool:
    return not allowed or "*" in allowed


def warn_if_open(allowed: tuple[str, ...]) -> None:
    if allows_everything(allowed):
        log.warning("ALLOWED_IMAGE_LIST is empty or '*': every image may run; set a list of globs")


def check_image(image: str, allowed: tuple[str, ...]) -> None:
    if not image_allowed(image, allowed):
        raise PolicyError(f"Forbidden: Image {image} does not match configured image allowlist.")


@lru_cache(maxsize=4096)
def image_allowed(image: str, allowed: tuple[str, ...]) -> bool:
    # Cached: a busy service checks the same few images against the same list for every task,
    # and the glob walk over a normalised reference costs about 0.3 ms.
    if allows_everything(allowed):
        return True
    normalised = normalise_image(image)
    return any(glob_match(normalise_entry(pattern), normalised) for pattern in allowed)


def warn_if_secrets_open(allowed: tuple[str, ...]) -> None:
    if allows_everything(allowed):
        log.warning(
            "ALLOWED_SECRET_LIST is empty or '*': a config may name any Secret in its namespace; "
            "set a list of globs"
        )


def check_secret(name: str, allowed: tuple[str, ...]) -> None:
    """ALLOWED_SECRET_LIST: globs of the Secrets a config may name (empty: any)."""
    if not allows_everything(allowed) and not any(glob_match(pattern, name) for pattern in allowed):
        raise PolicyError(f"Forbidden: Secret {name} is not in the allowed list (ALLOWED_SECRET_LIST).")


def check_supply_chain(image: str, *, require_digest: bool, allow_latest: bool) -> None:
    """REQUIRE_IMAGE_DIGEST and ALLOW_LATEST_TAG=false; each refusal names its setting."""
    ref = parse_image(image)
    if require_digest and not ref.digest.startswith("sha256:"):
        raise PolicyError(
            f"Forbidden: image {image} is not pinned by a digest (REQUIRE_IMAGE_DIGEST=true); "
            f"write it as {image}@sha256:<digest>"
        )
    if not allow_latest and not ref.digest and ref.tag in ("", "latest"):
        what = "has no tag, which means :latest" if not ref.tag else "uses the tag :latest"
        raise PolicyError(
            f"Forbidden: image {image} {what} (ALLOW_LATEST_TAG=false); "
            "name a fixed tag (such as :1.2.3) or a digest"
        )


def privileged_reason(security_context: Mapping[str, Any]) -> str | None:
    """What in a container securityContext grants privilege outright, or None."""
    if security_context.get("privileged") is True:
        return "privileged: true"
    if security_context.get("allowPrivilegeEscalation") is True:
        return "allowPrivilegeEscalation: true"
    added = _added_capabilities(security_context)
    if "ALL" in added:
        return "every capability (capabilities.add: ALL)"
    if "SYS_ADMIN" in added:
        return "the capability SYS_ADMIN"
    return None


def _added_capabilities(security_context: Mapping[str, Any]) -> list[str]:
    capabilities = security_context.get("capabilities")
    raw = capabilities.get("add") if isinstance(capabilities, Mapping) else None
    return [str(c).upper().removeprefix("CAP_") for c in raw] if isinstance(raw, list) else []


def baseline_violations(security_context: Mapping[str, Any], annotations: Mapping[str, str]) -> list[str]:
    """What the Pod Security Standard "baseline" forbids, each with its control's name."""
    found: list[str] = []
    extra = sorted({c for c in _added_capabilities(security_context) if c not in BASELINE_CAPABILITIES})
    if extra:
        found.append(f"capabilities.add {', '.join(extra)} (baseline rule 'Capabilities')")
    windows = security_context.get("windowsOptions")
    if isinstance(windows, Mapping) and windows.get("hostProcess") is True:
        found.append("windowsOptions.hostProcess: true (baseline rule 'HostProcess')")
    selinux = security_context.get("seLinuxOptions")
    if isinstance(selinux, Mapping):
        if str(selinux.get("type") or "") not in BASELINE_SELINUX_TYPES:
            found.append(f"seLinuxOptions.type: {selinux.get('type')} (baseline rule 'SELinux')")
        for key in ("user", "role"):
            if selinux.get(key):
                found.append(f"seLinuxOptions.{key}: {selinux.get(key)} (baseline rule 'SELinux')")
    if str(security_context.get("procMount") or "Default") != "Default":
        found.append(f"procMount: {security_context.get('procMount')} (baseline rule '/proc Mount Type')")
    for key, rule in (("seccompProfile", "Seccomp"), ("appArmorProfile", "AppArmor")):
        profile = security_context.get(key)
        if isinstance(profile, Mapping) and str(profile.get("type", "")).lower() == "unconfined":
            found.append(f"{key}.type: Unconfined (baseline rule '{rule}')")
    for key, value in annotations.items():
        # An empty value is the runtime's default, as the admission check allows it
        # (pod-security-admission policy/check_appArmorProfile.go allowedAnnotationValue).
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value == "" or value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(f"annotation {key}: {value} (baseline rule 'AppArmor')")
        if key.startswith(SECCOMP_ANNOTATIONS) and value.strip().lower() == "unconfined":
            found.append(f"annotation {key}: {value} (baseline rule 'Seccomp')")
    return found


def check_privileged(
    task_name: str,
    security_context: Mapping[str, Any],
    allow: bool,
    annotations: Mapping[str, str] | None = None,
) -> None:
    what = privileged_reason(security_context)
    rules = baseline_violations(security_context, annotations or {})
    if what is None and not rules:
        return
    if not allow:
        if what is not None:
            raise PolicyError(
                f"Forbidden: task '{task_name}' asks for {what}, but privileged jobs are not "
                "allowed (set ALLOW_PRIVILEGED_JOBS=true to permit them)"
            )
        raise PolicyError(
            f"Forbidden: task '{task_name}' asks for {'; '.join(rules)}, which the Pod Security "
            "Standard 'baseline' forbids (set ALLOW_PRIVILEGED_JOBS=true to permit it)"
        )
    log.warning(
        "task %r runs with %s (ALLOW_PRIVILEGED_JOBS is set)",
        task_name,
        "; ".join(filter(None, [what, *rules])),
    )


def check_allow_lists(images: tuple[str, ...], secrets: tuple[str, ...]) -> None:
    """ALLOWED_IMAGE_LIST and ALLOWED_SECRET_LIST, at start: an entry that is not a glob would
    match nothing, so the list would refuse more than its author meant, without saying why."""
    for name, entries, normalise in (
        ("ALLOWED_IMAGE_LIST", images, normalise_entry),
        ("ALLOWED_SECRET_LIST", secrets, str),
    ):
        for entry in entries:
            try:
                compile_glob(normalise(entry))
            except GlobError as exc:
                raise SettingsError(f"{name}: entry {entry!r} is not a glob: {exc}") from None


def check_operator_contexts(defaults: TaskDefaults, allow_privileged: bool) -> None:
    """JOB_SECURITY_CONTEXT and JOB_POD_SECURITY_CONTEXT, at start: what the API server would refuse,
    and (unless ALLOW_PRIVILEGED_JOBS) what the policy would refuse in every task."""
    for name, context in (
        ("JOB_SECURITY_CONTEXT", dict(defaults.security_context)),
        ("JOB_POD_SECURITY_CONTEXT", dict(defaults.pod_security_context)),
    ):
        problems = [message for _, message in security_context_problems(context, ())]
        refused = [r for r in (privileged_reason(context),) if r] + baseline_violations(context, {})
        if refused and not allow_privileged:
            problems.append(
                f"asks for {'; '.join(refused)}, which tasks may not without ALLOW_PRIVILEGED_JOBS=true"
            )
        if problems:
            raise SettingsError(f"{name}: {'; '.join(problems)}")
