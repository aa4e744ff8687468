"""The service's own fixtures (a real `serve` process, a recording sink) shared with tests/service."""

from tests.service.conftest import serve_factory, sink

__all__ = ["serve_factory", "sink"]
