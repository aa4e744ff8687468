"""Problems found in user input, reported as `FILE:LINE: message` (lint's output format)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}: {prefix}{self.message}"


class ConfigError(ValueError):
    """A job config cannot be used; carries every error found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FilesError(ValueError):
    """A task's files cannot be staged (missing, outside the tree, too large): says which and why."""
