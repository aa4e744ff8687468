"""The commands and background jobs: serve (service, wiring), run, render (dryrun), lint, retention."""
