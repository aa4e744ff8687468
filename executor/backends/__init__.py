"""Backends run TaskSpecs: `local` (subprocesses) and `kubernetes` (batch/v1 Jobs)."""
