"""A stateful fake Kubernetes API server for tests (see ``server.py``).

Use it from a test module with ``pytest_plugins = ["tests.kubeapi.fixtures"]`` and the
``kube_api`` / ``kube_api_client`` fixtures, or run ``python -m tests.kubeapi.server``.
"""
