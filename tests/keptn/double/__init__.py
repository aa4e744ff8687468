"""Pieces of the Keptn test double: the real nginx gateway and the services behind it."""
