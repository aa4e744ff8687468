"""The key naming shared by the renderer (writes the ConfigMap) and init-files (reads it)."""


def configmap_key(index: int) -> str:
    # ConfigMap keys cannot hold '/', so staged files are numbered in the order of JOB_FILES.
    return f"f{index:04d}"
