"""The HTTP API (``stepwell serve``): Retab's workflow endpoints over a local database.

The unmodified ``retab`` SDK works against it (``Retab(api_key=..., base_url=...)``):
``workflows.apply``, ``workflows.runs.create/get/list/cancel``, ``workflows.steps.list/
get``, ``workflows.reviews.list/get/approve/reject``, plus the legacy
``GET /v1/workflows/runs/{run_id}/steps``. See docs/http.md.

Modules: :mod:`.app` (``create_app``), :mod:`.auth` (API keys -> organizations),
:mod:`.config` (keys, body cap), :mod:`.errors` (the error body, 413), :mod:`.params`
(query checks), :mod:`.schemas` (OpenAPI models), :mod:`.shapes` (SDK enum mapping),
:mod:`.state` (engine, readers, background runs), :mod:`.documents` (data URLs), and
the routes: :mod:`.routes_read`, :mod:`.routes_write`, :mod:`.routes_reviews`.

Importing this package imports FastAPI; nothing on the ``stepwell run`` path does.
"""

from engine.server.app import app_state, create_app
from engine.server.config import ServerConfig, parse_api_keys, server_config

__all__ = ["ServerConfig", "app_state", "create_app", "parse_api_keys", "server_config"]
