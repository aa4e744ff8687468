"""The Kubernetes backend: each task a batch/v1 Job; everything that speaks to Kubernetes."""
