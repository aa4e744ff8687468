"""The `speedups` extra (SPEEDUPS): orjson reads and writes the same values as the standard
library, hands it whatever it refuses, and the whole extra can be turned off."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.support import collector, fastjson, speedups

pytest.importorskip("orjson")

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@pytest.fixture(params=["auto", "off"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    speedups.apply(request.param)
    yield request.param
    speedups.apply("auto")


def test_the_extra_is_used_unless_turned_off(mode: str) -> None:
    assert fastjson.active() is (mode == "auto")


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_what_the_standard_library_writes_is_read_back_the_same(value: Any) -> None:
    for on in (True, False):
        fastjson.use(on)
        try:
            text = json.dumps(value)
            assert fastjson.loads(text) == json.loads(text)
            assert fastjson.loads(text.encode()) == json.loads(text)
            assert json.loads(fastjson.dumps(value)) == value
        finally:
            fastjson.use(True)


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 123456789012345678901234567890}',  # beyond 64 bits
        '{"f": NaN, "g": -Infinity}',  # the standard library's extensions
        '{"s": "\\ud800"}',  # a lone surrogate
        '{"a": 1, "a": 2}',  # a repeated key: the last one wins in both
    ],
)
def test_what_orjson_refuses_the_standard_library_decides(mode: str, text: str) -> None:
    got, want = fastjson.loads(text), json.loads(text)
    assert got.keys() == want.keys()
    for key in want:
        if isinstance(want[key], float) and math.isnan(want[key]):
            assert math.isnan(got[key])
        else:
            assert got[key] == want[key]


def test_errors_are_the_standard_librarys(mode: str) -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        fastjson.loads(b'{"a": }')
    assert "Expecting value: line 1 column 7" in str(caught.value)


def test_what_orjson_cannot_write_is_written_by_the_standard_library(mode: str) -> None:
    value = {"big": 2**70, 1: "a key that is not a string"}
    assert json.loads(fastjson.dumps(value)) == {"big": 2**70, "1": "a key that is not a string"}
    assert fastjson.dumps({"s": "\ud800"}) == b'{"s":"\\ud800"}'


def test_serve_runs_on_uvloop_unless_turned_off() -> None:
    pytest.importorskip("uvloop")
    seen = {}

    async def which(mode: str) -> None:
        seen[mode] = (type(asyncio.get_running_loop()).__module__, speedups.describe())

    speedups.run(which("auto"), "auto")
    speedups.run(which("off"), "off")
    speedups.apply("auto")
    assert seen["auto"][0].startswith("uvloop") and seen["auto"][1] == "uvloop, orjson"
    assert seen["off"][0].startswith("asyncio")
    assert seen["off"][1] == "none (standard library event loop and JSON)"


def test_the_collector_is_settled_once_the_service_has_started() -> None:
    threshold = gc.get_threshold()
    try:
        said = collector.settle()
        assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, *threshold[1:])
        assert gc.get_freeze_count() > 1000  # this test process's modules, at least
        assert f"{gc.get_freeze_count():,} start-up objects frozen" in said
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_what_is_written_holds_the_memory_of_its_text_alone(mode: str) -> None:
    # orjson's own result keeps its 4 KB write buffer: the tracker holds each Job's status as
    # JSON, and at 50,000 Jobs in flight that cost 130 MB more RSS than the texts themselves.
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        kept = [fastjson.dumps({"active": 1, "n": i}) for i in range(1000)]
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(kept) == 1000 and (after - before) / 1000 < 200
