"""Label selectors and field selectors, parsed and matched like the API server does.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``,
``a notin (x,y)``, ``a>1``, ``a<1``, comma-separated (all must hold).
Field selectors: ``field=value``, ``field==value``, ``field!=value`` on the field
labels a resource supports; any other field label is a 400, as on a real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from tests.kubeapi.resources import ApiError, Obj, ResourceType
from tests.kubeapi.validation import label_key_errors, label_value_errors

_REQUIREMENT = re.compile(
    r"""
    \s*
    (?:
        !\s*(?P<absent>[^\s,=!()<>]+)
      | (?P<key>[^\s,=!()<>]+)\s*
        (?:
            (?P<setop>notin|in)\s*\(\s*(?P<values>[^()]*)\)
          | (?P<op>==|=|!=|<|>)\s*(?P<value>[^\s,=!()<>]*)
        )?
    )
    \s*(?P<sep>,|$)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # exists, !, in, notin, gt, lt
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "notin":
            return not present or labels[self.key] not in self.values
        if not present:
            return False
        try:
            have, want = int(labels[self.key]), int(next(iter(self.values)))
        except ValueError:
            return False
        return have > want if self.op == "gt" else have < want


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        text = (text or "").strip()
        requirements: list[Requirement] = []
        pos = 0
        while pos < len(text):
            m = _REQUIREMENT.match(text, pos)
            if not m or m.end() == pos:
                raise _bad(f"unable to parse requirement: found '{text[pos:]}'")
            pos = m.end()
            requirements.append(_requirement(m))
        return cls(tuple(requirements))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def equalities(self) -> Iterator[tuple[str, str]]:
        """(key, value) pairs every match must carry: usable to look up a label index."""
        for r in self.requirements:
            if r.op == "in" and len(r.values) == 1:
                yield r.key, next(iter(r.values))

    def __bool__(self) -> bool:
        return bool(self.requirements)


def _requirement(m: re.Match[str]) -> Requirement:
    if m["absent"]:
        _check_key(m["absent"])
        return Requirement(m["absent"], "!")
    key = m["key"]
    _check_key(key)
    if m["setop"]:
        values = [v.strip() for v in m["values"].split(",") if v.strip()]
        for value in values:
            _check_value(value)
        return Requirement(key, m["setop"], frozenset(values))
    op = m["op"]
    if op is None:
        return Requirement(key, "exists")
    value = m["value"]
    if op in ("<", ">"):
        if not re.fullmatch(r"-?[0-9]+", value):
            raise _bad(
                f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: {value!r}"
            )
        return Requirement(key, "gt" if op == ">" else "lt", frozenset([value]))
    _check_value(value)
    return Requirement(key, "in" if op in ("=", "==") else "notin", frozenset([value]))


def _check_key(key: str) -> None:
    errors = label_key_errors(key)
    if errors:
        raise _bad(f'unable to parse requirement: Invalid value: "{key}": {errors[0]}')


def _check_value(value: str) -> None:
    errors = label_value_errors(value)
    if errors:
        raise _bad(f'unable to parse requirement: Invalid value: "{value}": {errors[0]}')


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[Callable[[Obj], str], bool, str], ...] = ()  # (getter, equal?, value)

    @classmethod
    def parse(cls, rt: ResourceType, text: str | None) -> FieldSelector:
        terms: list[tuple[Callable[[Obj], str], bool, str]] = []
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            m = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", part)
            if not m:
                raise _bad(f"invalid selector: '{text}'; can't understand '{part}'")
            label, op, value = m.groups()
            getter = rt.fields.get(label)
            if getter is None:
                raise _bad(f"field label not supported: {label}")
            terms.append((getter, op != "!=", value))
        return cls(tuple(terms))

    def matches(self, obj: Obj) -> bool:
        return all((get(obj) == value) == equal for get, equal, value in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)


@dataclass(frozen=True)
class Selector:
    """A label selector and a field selector together, as a list or watch request carries."""

    labels: LabelSelector = LabelSelector()
    fields: FieldSelector = FieldSelector()

    @classmethod
    def parse(cls, rt: ResourceType, label_selector: str | None, field_selector: str | None) -> Selector:
        return cls(LabelSelector.parse(label_selector), FieldSelector.parse(rt, field_selector))

    def matches(self, obj: Obj) -> bool:
        return self.labels.matches(obj["metadata"].get("labels")) and self.fields.matches(obj)

    def __bool__(self) -> bool:
        return bool(self.labels) or bool(self.fields)
