"""Writes as the API server makes them: create, update and delete with their checks, defaults,
optimistic concurrency, deletion propagation and the garbage collector."""

from __future__ import annotations

import base64
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from tests.kubeapi.access import namespace_not_found
from tests.kubeapi.limits import check_stored_size, decode_check, pod_rule_errors
from tests.kubeapi.protocol import ValidationFailure, clone
from tests.kubeapi.resources import JOBS, NAMESPACES, PODS, SECRETS, ApiError, Obj, ResourceType, resolve
from tests.kubeapi.store import Store
from tests.kubeapi.validation import FieldError, ValidationMode, invalid, schema_error, semantic_errors
from tests.kubeapi.workloads import default_job, default_pod_spec, timestamp

log = logging.getLogger("tests.kubeapi.server")


class Writes(Store):
    """The API server's write paths over the store."""

    validation: ValidationMode
    gc_delay: float

    def _check_type(self, rt: ResourceType, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if (kind or rt.kind) != rt.kind or (api_version or rt.api_version) != rt.api_version:
            raise ApiError(
                400,
                f"the API version in the data ({api_version}) does not match the expected API"
                f" version ({rt.api_version})"
                if kind == rt.kind
                else f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})",
            )
        obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version

    def _validate(self, rt: ResourceType, obj: Obj, old: Obj | None, body: Any) -> None:
        errors: list[FieldError] = []
        schema = schema_error(obj, self.validation)
        if schema is not None:
            errors.append(schema)
        try:
            errors += semantic_errors(rt, obj, old)
            errors += pod_rule_errors(rt, obj)
        except (AttributeError, TypeError, KeyError):
            if not errors:  # a malformed object the schema check was told not to look at
                errors.append(FieldError("<root>", "Invalid value", None, "malformed object"))
        if errors:
            meta = obj.get("metadata") or {}
            name = meta.get("name") or meta.get("generateName") or ""
            error = invalid(rt, name, errors)
            self.validation_errors.append(
                ValidationFailure(
                    rt.kind, meta.get("namespace"), name, error.message, tuple(map(str, errors)), body
                )
            )
            raise error

    def _create(
        self, rt: ResourceType, namespace: str, body: Any, *, validate: bool = True, dry_run: bool = False
    ) -> Obj:
        arrived = time.time()
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "the body of the request is not a valid object")
        obj = clone(body)
        self._check_type(rt, obj)
        decode_check(rt, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        if rt.namespaced:
            meta["namespace"] = namespace
            if self._lookup(NAMESPACES, "", namespace) is None:
                raise namespace_not_found(namespace)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{self._suffix()}"
        if validate:
            self._validate(rt, obj, None, body)
        if meta.get("resourceVersion"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created")
        name = meta["name"]
        if rt is JOBS and not dry_run:
            self.job_arrivals.setdefault((namespace, name), arrived)
        if self._lookup(rt, namespace, name) is not None:
            raise rt.already_exists(name)
        for server_field in ("uid", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(server_field, None)
        meta["uid"] = self._new_uid()
        meta["creationTimestamp"] = timestamp()
        if rt is JOBS:
            default_job(obj)
        elif rt is PODS:
            default_pod_spec(obj.setdefault("spec", {}))
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rt is SECRETS:
            self._default_secret(obj)
        if dry_run:
            return obj
        check_stored_size(obj)
        stored = self._commit(rt, namespace, name, obj)
        if rt is JOBS:
            self.peak_active_jobs = max(self.peak_active_jobs, self.active_jobs())
        if rt is JOBS and self.auto_complete is not None:
            self._schedule_auto_complete(stored)
        return stored

    def active_jobs(self) -> int:
        """Jobs stored (any namespace) without a Complete or Failed condition: what a capacity
        limit counts. Deleted Jobs are gone from the store, so they do not count."""
        return self.active_job_count

    @staticmethod
    def _default_secret(obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def _update(
        self, rt: ResourceType, namespace: str, name: str, body: Any, *, dry_run: bool = False
    ) -> Obj:
        """PUT (and PATCH, once the patch is applied): optimistic concurrency, validation,
        generation, status kept from the stored object (a subresource), no-op detection."""
        old = self._require(rt, namespace, name)
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "the body of the request is not a valid object")
        new = clone(body)
        self._check_type(rt, new)
        decode_check(rt, new)
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
            )
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        if meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
            raise rt.conflict(
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if meta.get("uid") not in (None, "", old_meta["uid"]):
            raise rt.conflict(
                name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old_meta['uid']}",
            )
        for kept in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
        ):
            if kept in old_meta:
                meta[kept] = old_meta[kept]
        if rt.status_subresource:
            new["status"] = clone(old.get("status", {}))
        if rt is SECRETS:
            self._default_secret(new)
        self._validate(rt, new, old, body)
        if new.get("spec") != old.get("spec") and "generation" in meta:
            meta["generation"] += 1
        if new == old:
            return old  # a no-op update gets no new resourceVersion
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(rt, namespace, name)
        check_stored_size(new)
        return self._commit(rt, namespace, name, new)

    def _delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        policy: str | None,
        preconditions: Mapping[str, Any],
        dry_run: bool = False,
    ) -> Obj:
        obj = self._require(rt, namespace, name)
        meta = obj["metadata"]
        if preconditions.get("uid") not in (None, meta["uid"]):
            raise rt.conflict(
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in object meta: {meta['uid']}",
            )
        if preconditions.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise rt.conflict(
                name,
                f"Precondition failed: ResourceVersion in precondition: {preconditions['resourceVersion']},"
                f" ResourceVersion in object meta: {meta['resourceVersion']}",
            )
        # batch/v1 Jobs orphan their pods by default (kubectl asks for Background explicitly).
        policy = policy or ("Orphan" if rt is JOBS else "Background")
        if policy not in ("Orphan", "Foreground", "Background"):
            raise ApiError(
                422,
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}":'
                ' supported values: "Foreground", "Background", "Orphan"',
                reason="Invalid",
            )
        if dry_run:
            return obj
        if meta.get("deletionTimestamp"):
            return obj  # already being deleted
        finalizers = list(meta.get("finalizers") or [])
        gc_finalizer = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
        if gc_finalizer and gc_finalizer not in finalizers:
            finalizers.append(gc_finalizer)
        if not finalizers:
            final = self._remove(rt, namespace, name)
            self._schedule_gc(self._collect_dependents, meta["uid"])
            if rt is PODS:
                return final  # pods answer with the object, the rest with a Success Status
            details = rt.details(name, uid=meta["uid"])
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        new = clone(obj)
        new["metadata"].update(
            deletionTimestamp=timestamp(), deletionGracePeriodSeconds=0, finalizers=finalizers
        )
        stored = self._commit(rt, namespace, name, new)
        if gc_finalizer:
            self._schedule_gc(self._collect_owner, rt, namespace, name, meta["uid"], gc_finalizer)
        return stored

    def _schedule_gc(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            fn(*args)
            return

        def run() -> None:
            self._gc_handles.discard(handle)
            self._guard(fn, *args)

        handle = loop.call_later(self.gc_delay, run)
        self._gc_handles.add(handle)

    def _collect_dependents(self, owner_uid: str) -> None:
        """Background deletion: the garbage collector deletes what the owner owned."""
        for plural, ns, name in sorted(self._owned.get(owner_uid, set())):
            if self._lookup(resolve(plural), ns, name) is not None:
                self._remove(resolve(plural), ns, name)

    def _collect_owner(self, rt: ResourceType, ns: str, name: str, uid: str, finalizer: str) -> None:
        """Orphan / Foreground deletion: release or delete the dependents, then the owner."""
        for plural, dns, dname in sorted(self._owned.get(uid, set())):
            drt = resolve(plural)
            dependent = self._lookup(drt, dns, dname)
            if dependent is None:
                continue
            if finalizer == "foregroundDeletion":
                self._remove(drt, dns, dname)
            else:
                released = clone(dependent)
                refs = [r for r in released["metadata"].get("ownerReferences", []) if r["uid"] != uid]
                if refs:
                    released["metadata"]["ownerReferences"] = refs
                else:
                    released["metadata"].pop("ownerReferences", None)
                self._commit(drt, dns, dname, released)
        owner = self._lookup(rt, ns, name)
        if owner is None or owner["metadata"]["uid"] != uid:
            return
        new = clone(owner)
        finalizers = [f for f in new["metadata"].get("finalizers", []) if f != finalizer]
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
            self._commit(rt, ns, name, new)
        else:
            self._remove(rt, ns, name)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            self.server_errors.append(traceback.format_exc())
            log.exception("fake API server: background step failed")
