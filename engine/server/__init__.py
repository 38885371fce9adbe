"""The HTTP API (``stepwell serve``): Retab's workflow endpoints over a local database.

The unmodified ``retab`` SDK works against it (``Retab(api_key=..., base_url=...)``):
every method of ``client.workflows`` (but ``experiments``, which answers 501) and of
``client.files`` (but blueprints), plus the legacy ``GET /v1/workflows/runs/{run_id}/
steps``. docs/http.md lists each SDK method with its status.

Modules: :mod:`.app` (``create_app``), :mod:`.auth` (API keys -> organizations),
:mod:`.config` (keys, body cap), :mod:`.errors` (the error body, 413), :mod:`.params`
(query checks), :mod:`.lists` (pages, required scopes), :mod:`.paths` (collection names
are never workflow ids), :mod:`.schemas` / :mod:`.schemas_graph` / :mod:`.eval_shapes`
(request and response models), :mod:`.shapes` / :mod:`.graph_shapes` /
:mod:`.artifact_shapes` (the SDK's shapes), :mod:`.state` (engine, readers, background
runs), :mod:`.background` (eval runs), :mod:`.drafts` (a workflow's draft and versions),
:mod:`.documents` and :mod:`.file_refs` (run documents), :mod:`.run_export` (CSV), and the
routes: :mod:`.routes_read`, :mod:`.routes_write`, :mod:`.routes_reviews`,
:mod:`.routes_versions`, :mod:`.routes_blocks`, :mod:`.routes_edges`,
:mod:`.routes_executions`, :mod:`.routes_runs`, :mod:`.routes_artifacts`,
:mod:`.routes_evals`, :mod:`.routes_files`, :mod:`.routes_experiments`, :mod:`.routes_logs`.

Importing this package imports FastAPI; nothing on the ``stepwell run`` path does.
"""

from engine.server.app import app_state, create_app
from engine.server.config import ServerConfig, parse_api_keys, server_config

__all__ = ["ServerConfig", "app_state", "create_app", "parse_api_keys", "server_config"]
