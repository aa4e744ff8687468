"""Mutation testing of the pure core: `make mutate` (or `python -m tests.mutation.run [NAME ...]`).

Each module named in `modules.toml` is mutated by mutmut against ITS unit tests only, in a
throw-away copy of the tree (the working tree is never touched), bounded in time. The run writes
`latest.md` beside this file: per module the mutants tried, killed, survived, explained as
equivalent and left unchecked, the score, and every survivor with its diff. Survivors listed in
`equivalent.toml` (with the mutated line, so a stale entry no longer applies) are explained
there and do not count against the score.

mutmut mutates the bodies of functions and methods; module-level constants are pinned by plain
tests instead (tests/core/test_limits.py).

mutmut forks each mutant's run from the process that ran the clean tests, so a functools cache
filled there would answer for the mutant: fresh_caches.py (a pytest plugin every run loads)
empties the package's caches as each mutant's session starts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MUTMUT_ENV_DROP = ("PYTHONPATH", "MUTANT_UNDER_TEST")
# What a run copies besides the module: the package (its imports), the tests, the samples the
# core tests read, and the project file (pytest's settings).
COPY = ("executor", "tests", "samples", "pyproject.toml")
# mutmut's exit codes per mutant (mutmut/stats.py: status_by_exit_code).
KILLED = {1, 3}
SURVIVED = {0}
TIMEOUT = {36, -24, 24, 152, 255}


@dataclass
class Module:
    name: str
    source: str
    tests: list[str]
    budget: int


@dataclass
class Outcome:
    module: Module
    tried: int = 0
    killed: int = 0
    timeouts: int = 0
    unchecked: int = 0
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (mutant, diff)
    equivalent: list[tuple[str, str, str]] = field(default_factory=list)  # (mutant, diff, why)
    seconds: float = 0.0
    note: str = ""

    @property
    def score(self) -> float:
        judged = self.tried - self.unchecked - len(self.equivalent)
        return 100.0 * (self.killed + self.timeouts) / judged if judged > 0 else 0.0


def load_modules(path: Path, default_budget: int) -> list[Module]:
    table = tomllib.loads(path.read_text())["modules"]
    return [
        Module(name, spec["source"], list(spec["tests"]), int(spec.get("budget", default_budget)))
        for name, spec in table.items()
    ]


def load_equivalents(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    return dict(tomllib.loads(path.read_text()).get("equivalent", {}))


def mutmut_bin() -> str:
    found = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or shutil.which("mutmut")
    if found is None:
        sys.exit("mutmut is not installed: pip install -e '.[mutation]'")
    return found


def prepare(workdir: Path, module: Module) -> None:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(
                src, workdir / name, ignore=shutil.ignore_patterns("__pycache__", "mutants", "*.pyc")
            )
        else:
            shutil.copy2(src, workdir / name)
    tests = "\n    ".join(module.tests)
    (workdir / "setup.cfg").write_text(
        "[mutmut]\n"
        f"source_paths={module.source}\n"
        f"pytest_add_cli_args_test_selection=\n    {tests}\n"
        # fresh_caches empties the package's lru_caches as each mutant's session starts.
        "pytest_add_cli_args=\n    -p no:cacheprovider\n    -p tests.mutation.fresh_caches\n    -x\n"
        "also_copy=\n    executor\n    samples\n"
    )


def run_mutmut(workdir: Path, module: Module, log: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in MUTMUT_ENV_DROP}
    cmd = [mutmut_bin(), "run", "--max-children", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=module.budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return f"stopped after its budget of {module.budget} s"
    return "" if proc.returncode == 0 else f"mutmut exited with {proc.returncode} (see the log)"


def show(workdir: Path, mutant: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in MUTMUT_ENV_DROP}
    done = subprocess.run(
        [mutmut_bin(), "show", mutant], cwd=workdir, env=env, capture_output=True, text=True, timeout=60
    )
    lines = [ln for ln in done.stdout.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    return "\n".join(lines)


def collect(workdir: Path, module: Module, equivalents: dict[str, dict[str, str]], out: Outcome) -> None:
    meta = workdir / "mutants" / (module.source + ".meta")
    if not meta.exists():
        out.note = (out.note + "; " if out.note else "") + "no results (mutmut did not get to run)"
        return
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    for mutant, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
        out.tried += 1
        if code is None:
            out.unchecked += 1
        elif code in KILLED:
            out.killed += 1
        elif code in TIMEOUT:
            out.timeouts += 1
        else:
            diff = show(workdir, mutant)
            known = equivalents.get(mutant)
            if known is not None and known.get("line", "").strip() in diff:
                out.equivalent.append((mutant, diff, known.get("why", "")))
            else:
                status = "survived" if code in SURVIVED else f"exit code {code}"
                out.survivors.append((mutant, f"# {status}\n{diff}"))


def _natural(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("_")
    return (head, int(number)) if number.isdigit() else (name, 0)


def run_module(module: Module, equivalents: dict[str, dict[str, str]], keep: bool) -> Outcome:
    out = Outcome(module)
    missing = [t for t in module.tests if not (ROOT / t.split("::")[0]).exists()]
    if not (ROOT / module.source).exists() or missing:
        out.note = f"missing: {', '.join([module.source, *missing])} (edit tests/mutation/modules.toml)"
        return out
    workdir = Path(tempfile.mkdtemp(prefix=f"mutate-{module.name}-"))
    started = time.monotonic()
    try:
        prepare(workdir, module)
        out.note = run_mutmut(workdir, module, workdir / "mutmut.log")
        collect(workdir, module, equivalents, out)
    finally:
        out.seconds = time.monotonic() - started
        if keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def report(outcomes: list[Outcome]) -> str:
    lines = [
        "# Mutation testing of the core (latest run)",
        "",
        "Written by `make mutate` (tests/mutation/run.py); modules and their tests: "
        "tests/mutation/modules.toml; explained equivalents: tests/mutation/equivalent.toml.",
        "Score = (killed + timed out) / (tried - unchecked - equivalent). Goal: at least 90% per module.",
        "",
        "| module | source | tried | killed | timed out | survived | equivalent | unchecked | score | seconds |",
        "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.module.name} | `{o.module.source}` | {o.tried} | {o.killed} | {o.timeouts} | "
            f"{len(o.survivors)} | {len(o.equivalent)} | {o.unchecked} | {o.score:.1f}% | {o.seconds:.0f} |"
        )
    notes = [f"- {o.module.name}: {o.note}" for o in outcomes if o.note]
    if notes:
        lines += ["", "Notes:", *notes]
    for o in outcomes:
        if not (o.survivors or o.equivalent):
            continue
        lines += ["", f"## {o.module.name}"]
        for mutant, diff in o.survivors:
            lines += ["", f"Survivor `{mutant}`:", "```diff", diff, "```"]
        for mutant, diff, why in o.equivalent:
            lines += ["", f"Equivalent `{mutant}`: {why}", "```diff", diff, "```"]
    return "\n".join(lines) + "\n"


def merge(existing: str, outcomes: list[Outcome]) -> str:
    """The existing report with these modules' rows and sections replaced (added when new), so a
    run of some modules keeps the others' figures and the notes written by hand."""
    fresh = report(outcomes)
    rows = {
        o.module.name: line
        for o in outcomes
        for line in fresh.splitlines()
        if line.startswith(f"| {o.module.name} |")
    }
    lines = existing.rstrip("\n").split("\n")
    table_end = max(i for i, line in enumerate(lines) if line.startswith("| ")) + 1
    for name, row in rows.items():
        at = next((i for i, line in enumerate(lines) if line.startswith(f"| {name} |")), None)
        if at is None:
            lines.insert(table_end, row)
            table_end += 1
        else:
            lines[at] = row
    text = "\n".join(lines) + "\n"
    for o in outcomes:
        text = _replace_section(text, o.module.name, _section(fresh, o.module.name))
    notes = [f"- {o.module.name}: {o.note}" for o in outcomes if o.note]
    if notes:
        first = text.find("\n## ")
        cut = len(text) if first == -1 else first
        text = text[:cut].rstrip("\n") + "\n" + "\n".join(notes) + "\n" + text[cut:]
    return text


def _section(text: str, name: str) -> str:
    start = text.find(f"\n## {name}\n")
    if start == -1:
        return ""
    end = text.find("\n## ", start + 1)
    return text[start : len(text) if end == -1 else end].rstrip("\n") + "\n"


def _replace_section(text: str, name: str, section: str) -> str:
    old = _section(text, name)
    if old:
        return text.replace(old, section, 1)
    return text.rstrip("\n") + "\n" + section if section else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="modules to run (default: all in modules.toml)")
    parser.add_argument("--budget", type=int, default=240, help="default seconds per module")
    parser.add_argument("--out", type=Path, default=HERE / "latest.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args(argv)
    modules = load_modules(HERE / "modules.toml", args.budget)
    unknown = set(args.names) - {m.name for m in modules}
    if unknown:
        parser.error(f"unknown module(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in modules if not args.names or m.name in args.names]
    equivalents = load_equivalents(HERE / "equivalent.toml")
    outcomes = []
    for module in chosen:
        print(f"mutating {module.source} against {' '.join(module.tests)}", file=sys.stderr, flush=True)
        outcome = run_module(module, equivalents, args.keep)
        print(
            f"  {outcome.killed + outcome.timeouts}/{outcome.tried} killed, {outcome.score:.1f}% "
            f"{outcome.note}",
            file=sys.stderr,
            flush=True,
        )
        outcomes.append(outcome)
    partial = bool(args.names) and args.out.exists()
    args.out.write_text(merge(args.out.read_text(), outcomes) if partial else report(outcomes))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(o.score >= 90.0 and not o.unchecked for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
