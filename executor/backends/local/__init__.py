"""The local backend: each task a subprocess in a fresh work dir."""
