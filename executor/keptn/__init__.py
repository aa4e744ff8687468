"""Keptn control plane: the API client, the config resolver and the files of the resource service."""

from executor.keptn.api import (
    IntegrationMetadata,
    KeptnAPI,
    KeptnAuthError,
    KeptnError,
    KeptnRequestError,
    KeptnUnavailable,
    Resource,
    Subscription,
)

__all__ = [
    "IntegrationMetadata",
    "KeptnAPI",
    "KeptnAuthError",
    "KeptnError",
    "KeptnRequestError",
    "KeptnUnavailable",
    "Resource",
    "Subscription",
]
