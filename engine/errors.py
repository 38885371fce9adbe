"""Compatibility alias: :mod:`engine.contracts.errors` is the home of these names."""

from engine.contracts.errors import *  # noqa: F403
