"""The web UI served by ``stepwell serve`` next to the HTTP API.

Pages (their paths are part of the contract): ``/`` runs list, ``/runs/{run_id}`` run
page, ``/runs/{run_id}/steps/{step_id}`` step page, ``/reviews`` review queue and
``/reviews/{review_id}`` one review. They are rendered on the server (Jinja2,
:mod:`.render`) from the read API and the overview queries of the read store
(:mod:`engine.contracts.outline`), so they work over any store; a little plain JavaScript
(``static/app.js``) adds live updates over Server-Sent Events (:mod:`.feed`) and lazy
loading; ``static/graph.js`` lays the workflow graph out with the vendored dagre
(``static/vendor/``). Nothing is fetched from the network.

Modules: :mod:`.session` (login, organization, CSRF), :mod:`.common` (state, gate),
:mod:`.routes_pages`, :mod:`.routes_actions` (forms), :mod:`.routes_assets` (streams,
documents), and the page models :mod:`.runs_view`, :mod:`.run_view`,
:mod:`.blocks_view`, :mod:`.step_view`, :mod:`.review_view`; :mod:`.documents` renders
PDF pages. See docs/ui.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install_ui(app: FastAPI) -> None:
    """Add the web UI's routes and static files to an app made by ``create_app``."""
    from engine.server.ui import routes_actions, routes_assets, routes_pages
    from engine.server.ui.common import make_ui_state

    app.state.stepwell_ui = make_ui_state(app.state.stepwell)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(routes_pages.router)
    app.include_router(routes_actions.router)
    app.include_router(routes_assets.router)


__all__ = ["install_ui"]
