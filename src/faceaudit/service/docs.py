"""``/docs``: Swagger UI from files the server itself serves (the ``fastapi-offline`` package ships them), so the
API's documentation renders on an installation with no way out to a CDN. No inline script: the CSP allows only
this server's own files."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"
_CONSOLE_STATIC = Path(__file__).parent / "console" / "static"


def _swagger_folder() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets on ``app`` (created with ``docs_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=_swagger_folder()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = escape(str(request.scope.get("root_path", "")).rstrip("/"))
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>faceaudit API docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="{root}{ASSETS}/favicon.png">
<link rel="stylesheet" href="{root}{ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi="{root}/openapi.json"></div>
<script src="{root}{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{root}/ui/static/docs.js"></script>
</body></html>"""
        return HTMLResponse(page)


__all__ = ["install"]
