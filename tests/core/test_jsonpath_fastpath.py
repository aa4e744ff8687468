"""The direct walk for plain paths must find exactly what jsonpath-ng finds."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from executor.config.jsonpaths import MISSING, _plain_steps, compile_path, find_first

keys = st.sampled_from(["data", "a", "b", "k-1", "x_y", "0"])
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3))
documents = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
steps = st.lists(
    st.one_of(
        keys.map(lambda k: f".{k}" if not k[0].isdigit() else f"['{k}']"),
        st.integers(0, 3).map(lambda i: f"[{i}]"),
    ),
    max_size=4,
)


def slow(expression: str, document: Any) -> Any:
    found = compile_path(expression).find(document)
    return found[0].value if found else MISSING


@settings(max_examples=300, deadline=None)
@given(documents, steps)
def test_fast_path_agrees_with_jsonpath_ng(document: Any, path: list[str]) -> None:
    expression = "$" + "".join(path)
    assert _plain_steps(expression) is not None
    fast = find_first(expression, document)
    expected = slow(expression, document)
    assert fast is expected if expected is MISSING else fast == expected


def test_paths_with_wildcards_or_filters_use_jsonpath_ng() -> None:
    document = {"data": {"items": [{"n": 1}, {"n": 2}]}}
    assert _plain_steps("$.data.items[*].n") is None
    assert find_first("$.data.items[*].n", document) == 1
    assert _plain_steps("$.data.items[?(@.n > 1)].n") is None
    assert find_first("$.data.items[?(@.n > 1)].n", document) == 2
    assert _plain_steps("$..n") is None
    assert find_first("$..n", document) == 1
