"""The shared vocabulary of stepwell: the leaf every other part builds on.

``engine.contracts`` imports nothing from the rest of the project (the import-linter
contracts in ``pyproject.toml`` check it), so the block library (``blocks/``) and the
stores (``store/``) can depend on it, and on nothing else of the engine:

- :mod:`~engine.contracts.errors`: the error tree, with advice in every message;
- :mod:`~engine.contracts.values`: payloads, file references, loop frames, lifecycles;
- :mod:`~engine.contracts.events`: what the runner asks a store to persist;
- :mod:`~engine.contracts.blocks`: what a handler receives and returns;
- :mod:`~engine.contracts.files`: the file-store protocol and MIME detection;
- :mod:`~engine.contracts.definition`: blocks and edges as written;
- :mod:`~engine.contracts.store`: the store protocols (runs, reviews, workflows, reads);
- :mod:`~engine.contracts.reads`: what the read protocol returns: records, filters, pages;
- :mod:`~engine.contracts.records`: reviews, review versions and registered workflows;
- :mod:`~engine.contracts.frozen`: ``@record``, how stepwell declares its frozen records.

Submodules are imported explicitly: importing this package loads nothing.
"""
