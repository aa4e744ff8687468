"""A pytest plugin the mutation runs load (`-p tests.mutation.fresh_caches`, see run.py).

mutmut 3 runs the clean tests in its main process and then forks one child per mutant from it,
and the mutated code is picked at call time behind a trampoline. A `functools.lru_cache` wraps
that trampoline, so every value the clean run cached is handed to the mutant without the mutant's
code ever running: compile_glob's cache hid 109 of glob's survivors that way. Clearing the
package's caches when each pytest session starts (one session per mutant) makes every mutant
compute what it returns.
"""

from __future__ import annotations

import sys

import pytest

PACKAGE = "executor"


def clear_package_caches() -> int:
    """Empty every cache of a module-level function of the package; returns how many."""
    cleared: set[int] = set()  # by id: a function imported into other modules is seen again
    for name, module in list(sys.modules.items()):
        if module is None or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
            continue
        for value in list(vars(module).values()):
            # Only functools' wrappers: they carry both (a bare cache_clear could be anything).
            clear = getattr(value, "cache_clear", None)
            if callable(clear) and callable(getattr(value, "cache_info", None)) and id(value) not in cleared:
                clear()
                cleared.add(id(value))
    return len(cleared)


def pytest_sessionstart(session: pytest.Session) -> None:
    clear_package_caches()
