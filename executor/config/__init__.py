"""The job/config.yaml language: loading YAML with lines, the tables of fields, the parser into
the frozen model, the JSON Schema, and the matching helpers (globs, jsonpaths, file paths)."""
