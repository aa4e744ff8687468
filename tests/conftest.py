"""Fixtures shared by every test directory."""

from tests.service.conftest import sink  # noqa: F401 - the recording HTTP sink, a fixture
