"""stepwell benchmarks: ``python -m bench`` prints a table (see ``--help``)."""
