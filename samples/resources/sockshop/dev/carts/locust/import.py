import basic  # noqa: F401
