"""One module per schema revision (see :mod:`store.migrations`)."""
