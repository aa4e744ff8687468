"""samples/deploy/job-executor.service: the local backend as a systemd service on a plain machine
(issue 15 item 8). systemd itself checks the unit where it is installed; the rest is read here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from executor.settings import ENV_VARS, Settings, declared

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "samples" / "deploy" / "job-executor.service"
ENV_FILE = ROOT / "samples" / "deploy" / "job-executor.env"
INSTALLED = "/opt/job-executor/bin/job-executor"  # where the unit's comment installs it
_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "ms": 0.001}


def settings_of(text: str) -> dict[str, list[str]]:
    """`[Service]` keys -> their values, in order (systemd allows a key more than once)."""
    section, out = "", {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def seconds(value: str) -> float:
    """A systemd time span as this unit writes it: `45`, `45s`, `2min`, `1min 30s`."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * _UNITS[unit]
    return total


def grace_default() -> float:
    (field,) = [f for _, f in declared() if f.metadata["env"] == "SHUTDOWN_GRACE_SECONDS"]
    return float(field.default)


SERVICE = settings_of(UNIT.read_text())


def test_systemd_waits_longer_than_the_shutdown_grace() -> None:
    (timeout,) = SERVICE["TimeoutStopSec"]
    assert seconds(timeout) > grace_default()
    # Only serve gets the signal: the tasks, adopted by the next start, are not killed with it.
    assert SERVICE["KillMode"] == ["process"] and SERVICE["KillSignal"] == ["SIGTERM"]


def test_a_dedicated_user_a_settings_file_restarts_and_a_read_only_system() -> None:
    assert SERVICE["User"] == ["job-executor"] and SERVICE["Group"] == ["job-executor"]
    assert SERVICE["EnvironmentFile"] == ["/etc/job-executor/job-executor.env"]
    assert SERVICE["Restart"] == ["always"]
    assert SERVICE["ProtectSystem"] == ["strict"] and SERVICE["NoNewPrivileges"] == ["yes"]
    # The one writable place, where the state and the tasks' work dirs are.
    defaults = dict(pair.split("=", 1) for value in SERVICE["Environment"] for pair in value.split())
    assert SERVICE["StateDirectory"] == ["job-executor"]
    assert defaults["STATE_DIR"] == "/var/lib/job-executor" and defaults["BACKEND"] == "local"
    assert set(defaults) <= ENV_VARS


def test_the_sample_settings_file_is_accepted() -> None:
    env = dict(
        line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if line.strip() and line[0] != "#"
    )
    assert set(env) <= ENV_VARS
    Settings.from_env(env).check()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this installation's.
    program = Path(sys.executable).parent / "job-executor"
    if not program.exists():
        pytest.skip(f"no job-executor console script beside {sys.executable}")
    text = UNIT.read_text()
    assert INSTALLED in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(INSTALLED, str(program)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # An unknown key or a bad value is only a warning (exit 0): none is allowed.
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
