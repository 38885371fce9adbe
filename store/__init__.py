"""stepwell storage: SQLite (WAL) store, file store and the read API."""
