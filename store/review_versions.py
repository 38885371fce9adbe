"""Review versions, under their old import path (kept one release).

The records and the proposal builder live in :mod:`engine.contracts.records`; every store
keeps corrections through its :class:`~engine.contracts.store.ReviewStore` methods
(``add_review_version``, ``review_versions``, ``review_version``).
"""

from __future__ import annotations

from engine.contracts.records import ReviewVersion, proposal

__all__ = ["ReviewVersion", "proposal"]
