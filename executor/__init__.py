"""job-executor: turns CloudEvents into Kubernetes Jobs or local processes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("job-executor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
