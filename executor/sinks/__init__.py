"""Sinks deliver outgoing CloudEvents: HTTP POST (K_SINK), stdout."""
