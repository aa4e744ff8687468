"""The words every step speaks: events in and out, tasks and their outcomes, problems, errors.
Imports nothing else of ours."""
