"""The service's real-process fixtures (a sink, `serve` in a subprocess) for the fault suite."""

from __future__ import annotations

from tests.service.conftest import serve_factory, sink

__all__ = ["serve_factory", "sink"]
