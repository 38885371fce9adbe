"""``stepwell db status | upgrade``: the schema revision of a database, and migrating it.

A store refuses a database written with another layout (older: upgrade it; newer:
upgrade stepwell) rather than misreading it. ``db upgrade`` runs the migrations
(:mod:`store.migrate`) in one transaction: when one fails, the database is unchanged.
"""

from __future__ import annotations

import typer

from engine.cli_read import DbOption, JsonOption
from engine.cli_support import handle_errors, print_json, resolve_db, stdout

db_app = typer.Typer(help="The database's schema revision, and upgrading it.",
                     no_args_is_help=True)


@db_app.command("status")
@handle_errors
def status(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Show the schema revision of the database and the one this stepwell reads."""
    from store import migrate

    found = migrate.status(resolve_db(db))
    if as_json:
        print_json({"database": found.database, "revision": found.revision,
                    "head": found.head, "current": found.current, "state": found.state})
        return
    stdout().print(f"{found.database}: schema {found.revision or '-'} (this stepwell reads "
                   f"{found.head}): {_STATES[found.state]}", soft_wrap=True)


_STATES = {
    "current": "up to date",
    "empty": "empty (a store or `stepwell db upgrade` creates the layout)",
    "older": "needs `stepwell db upgrade` (back it up first)",
    "newer": "written by a newer stepwell: upgrade stepwell (pip install -U stepwell)",
    "unknown": "a revision no stepwell wrote: point --db at a stepwell database",
}


@db_app.command("upgrade")
@handle_errors
def upgrade(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Migrate the database to the schema this stepwell reads (back it up first)."""
    from store import migrate

    before, after = migrate.upgrade(resolve_db(db))
    if as_json:
        print_json({"database": after.database, "from": before.revision,
                    "to": after.revision})
        return
    if before.revision == after.revision:
        stdout().print(f"{after.database} is already at schema {after.revision}.",
                       soft_wrap=True)
    else:
        stdout().print(f"Upgraded {after.database} from schema {before.revision or '(empty)'} "
                       f"to {after.revision}.", soft_wrap=True)

