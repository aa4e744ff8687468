"""Sinks deliver outgoing CloudEvents: HTTP POST (K_SINK), NATS, the Keptn API, stdout."""
