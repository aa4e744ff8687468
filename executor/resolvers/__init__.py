"""Which job/config.yaml applies to an event: from a local tree or from Keptn's resource service."""
