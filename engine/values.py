"""Compatibility alias: :mod:`engine.contracts.values` is the home of these names."""

from engine.contracts.values import *  # noqa: F403
