"""Compatibility alias: :mod:`engine.contracts.events` is the home of these names."""

from engine.contracts.events import *  # noqa: F403
