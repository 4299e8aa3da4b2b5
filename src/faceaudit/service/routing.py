"""Route templates: ``/v1/subjects/{ref}``, never the concrete path, which may hold a subject ref (for the access
log and the ledger's refusals)."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Mount, compile_path


def route_path(scope: dict) -> str:
    """The path without the root path (uvicorn's ``scope["path"]`` includes ``--root-path``)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def route_template(app: Any, scope: dict) -> str:
    """The route template a request matches (``/v1/subjects/{ref}``), never its concrete path; ``-`` when none.

    After routing it is the matched route's; before (a refusal at the edge, a 413) it is looked up."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    if app is None:
        return "-"
    table = getattr(app.state, "route_table", None)
    if table is None:
        table = app.state.route_table = _route_table(app.routes)
    path, method = route_path(scope), scope.get("method", "")
    found = [(methods, template) for regex, methods, template in table if regex.fullmatch(path)]
    for methods, template in found:
        if methods is None or method in methods:
            return template
    return found[0][1] if found else "-"


def _route_table(routes: Any, prefix: str = "") -> list[tuple[re.Pattern, set[str] | None, str]]:
    """(path regex, methods, template) of every route, included routers and mounts flattened."""
    table: list[tuple[re.Pattern, set[str] | None, str]] = []
    for route in routes:
        inner = getattr(route, "original_router", None)  # FastAPI's included router
        if inner is not None:
            context = getattr(route, "include_context", None)
            table += _route_table(inner.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, Mount):
            template = prefix + route.path + "/…"
            table.append((re.compile(re.escape(prefix + route.path) + "/.*"), None, template))
        elif hasattr(route, "path"):
            regex, _, _ = compile_path(prefix + route.path)
            table.append((regex, getattr(route, "methods", None), prefix + route.path))
    return table
