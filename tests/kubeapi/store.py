"""The fake API server's object store: objects by resource and namespace, the label and owner
indexes, the change history watches replay, one global resourceVersion counter."""

from __future__ import annotations

import asyncio
import bisect
import random
import uuid
from collections.abc import Iterable

from tests.kubeapi.protocol import (
    INITIAL_RESOURCE_VERSION,
    POD_SUFFIX,
    FaultRule,
    HistoryEvent,
    HoldRule,
    RequestRecord,
    ValidationFailure,
    Watch,
    obj_key,
    with_rv,
)
from tests.kubeapi.resources import PODS, Obj, ResourceType
from tests.kubeapi.selectors import Selector


class Store:
    """State and the primitive writes every layer above commits through.

    Each commit is one resourceVersion, one history entry and one event for the open watches.
    """

    history_limit: int | None
    server_errors: list[str]
    request_log: list[RequestRecord]
    validation_errors: list[ValidationFailure]
    job_arrivals: dict[tuple[str, str], float]
    peak_active_jobs: int
    active_job_count: int

    def _init_store(self, seed: int | None, history_limit: int | None) -> None:
        self.history_limit = history_limit
        self.request_log = []
        # Wall-clock time each Job create arrived, for the latency benchmark.
        self.job_arrivals = {}
        # The most Jobs without an end there ever were at once, counted at each create (clusters'
        # maxConcurrentJobs is checked against it).
        self.peak_active_jobs = 0
        # Jobs stored without a Complete or Failed condition, kept up to date at each commit
        # (counting them over the store at each create was quadratic: hours for 50,000 Jobs).
        self.active_job_count = 0
        self.validation_errors = []
        self.server_errors = []  # bugs of the fake itself (tracebacks)
        self._rng = random.Random(seed)
        self._rv = INITIAL_RESOURCE_VERSION
        self._compacted = INITIAL_RESOURCE_VERSION  # history holds the changes after this one
        self._objects: dict[str, dict[str, dict[str, Obj]]] = {}  # plural -> ns -> name -> obj
        self._label_index: dict[str, dict[tuple[str, str], set[tuple[str, str]]]] = {}
        self._owned: dict[str, set[tuple[str, str, str]]] = {}  # owner uid -> (plural, ns, name)
        self._history: list[HistoryEvent] = []
        self._history_rvs: list[int] = []
        self._watches: dict[str, set[Watch]] = {}
        self._logs: dict[tuple[str, str, str], str] = {}
        self._faults: list[FaultRule] = []
        self._holds: list[HoldRule] = []
        self._timers: dict[str, list[asyncio.Handle]] = {}
        self._gc_handles: set[asyncio.Handle] = set()
        self._names = 0
        self._terminating: dict[tuple[str, str], tuple[str, int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _lookup(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        return self._objects.get(rt.plural, {}).get(namespace, {}).get(name)

    def _require(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self._lookup(rt, namespace, name)
        if obj is None:
            raise rt.not_found(name)
        return obj

    def _commit(self, rt: ResourceType, namespace: str, name: str, new: Obj) -> Obj:
        """Store ``new`` (a fresh dict nobody else holds) as the next resourceVersion."""
        prev = self._lookup(rt, namespace, name)
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        self._objects.setdefault(rt.plural, {}).setdefault(namespace, {})[name] = new
        self._reindex(rt, namespace, name, prev, new)
        self._record(HistoryEvent(self._rv, rt.plural, namespace, "MODIFIED" if prev else "ADDED", new, prev))
        return new

    def _remove(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        prev = self._require(rt, namespace, name)
        self._rv += 1
        final = with_rv(prev, str(self._rv))
        by_ns = self._objects[rt.plural]
        del by_ns[namespace][name]
        if not by_ns[namespace]:
            del by_ns[namespace]
        self._reindex(rt, namespace, name, prev, None)
        self._record(HistoryEvent(self._rv, rt.plural, namespace, "DELETED", final, prev))
        self._forget(rt, final)
        return final

    def _reindex(self, rt: ResourceType, ns: str, name: str, prev: Obj | None, new: Obj | None) -> None:
        if rt.plural == "jobs":
            self.active_job_count += _active_job(new) - _active_job(prev)
        index = self._label_index.setdefault(rt.plural, {})
        key = (ns, name)
        old_labels = (prev["metadata"].get("labels") or {}) if prev else {}
        new_labels = (new["metadata"].get("labels") or {}) if new else {}
        if old_labels != new_labels:
            for pair in old_labels.items():
                keys = index.get(pair)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[pair]
            for pair in new_labels.items():
                index.setdefault(pair, set()).add(key)
        ref = (rt.plural, ns, name)
        old_owners = {o["uid"] for o in (prev["metadata"].get("ownerReferences") or [])} if prev else set()
        new_owners = {o["uid"] for o in (new["metadata"].get("ownerReferences") or [])} if new else set()
        for uid in old_owners - new_owners:
            owned = self._owned.get(uid)
            if owned is not None:
                owned.discard(ref)
                if not owned:
                    del self._owned[uid]
        for uid in new_owners - old_owners:
            self._owned.setdefault(uid, set()).add(ref)

    def _record(self, ev: HistoryEvent) -> None:
        self._history.append(ev)
        self._history_rvs.append(ev.rv)
        if self.history_limit is not None and len(self._history) > self.history_limit:
            drop = len(self._history) - self.history_limit // 2
            self._compacted = self._history[drop - 1].rv
            del self._history[:drop]
            del self._history_rvs[:drop]
        for w in self._watches.get(ev.plural, ()):
            w.offer(ev)

    def _forget(self, rt: ResourceType, final: Obj) -> None:
        """Side effects of an object's removal: its timers and its logs go too."""
        meta = final["metadata"]
        for handle in self._timers.pop(meta["uid"], []):
            handle.cancel()
        if rt is PODS:
            for c in final["spec"].get("initContainers", []) + final["spec"].get("containers", []):
                self._logs.pop((meta["namespace"], meta["name"], c["name"]), None)

    def _select(self, rt: ResourceType, namespace: str | None, selector: Selector) -> list[Obj]:
        """The current objects matching, sorted by (namespace, name); uses the label index."""
        by_ns = self._objects.get(rt.plural, {})
        candidates: Iterable[Obj]
        equalities = list(selector.labels.equalities())
        if equalities:
            index = self._label_index.get(rt.plural, {})
            keys = min((index.get(pair, set()) for pair in equalities), key=len)
            candidates = [by_ns[ns][name] for ns, name in keys if namespace is None or ns == namespace]
        elif namespace is not None:
            candidates = by_ns.get(namespace, {}).values()
        else:
            candidates = (obj for objs in by_ns.values() for obj in objs.values())
        found = [obj for obj in candidates if not selector or selector.matches(obj)]
        found.sort(key=obj_key)
        return found

    def _select_at(self, rt: ResourceType, namespace: str | None, selector: Selector, rv: int) -> list[Obj]:
        """The objects as they were at resourceVersion ``rv`` (rolled back through history)."""
        if rv >= self._rv:
            return self._select(rt, namespace, selector)
        state = {obj_key(obj): obj for obj in self._select(rt, namespace, Selector())}
        start = bisect.bisect_right(self._history_rvs, rv)
        for ev in reversed(self._history[start:]):
            if ev.plural != rt.plural or (namespace is not None and ev.namespace != namespace):
                continue
            key = (ev.namespace, ev.obj["metadata"]["name"])
            if ev.prev is None:
                state.pop(key, None)
            else:
                state[key] = ev.prev
        found = [obj for obj in state.values() if not selector or selector.matches(obj)]
        found.sort(key=obj_key)
        return found

    def _new_uid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _suffix(self) -> str:
        return "".join(self._rng.choice(POD_SUFFIX) for _ in range(5))


def _active_job(job: Obj | None) -> int:
    """1 for a stored Job that has not ended (no Complete or Failed condition), else 0."""
    if job is None:
        return 0
    conditions = (job.get("status") or {}).get("conditions") or []
    ended = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)
    return 0 if ended else 1
