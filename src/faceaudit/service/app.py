"""The FastAPI application: ``create_app(config)`` loads the gallery, models and index once and serves ``/v1``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from faceaudit import __version__
from faceaudit.service import console, docs, errors
from faceaudit.service.edge import Edge
from faceaudit.service.limits import UploadLimit
from faceaudit.service.routes import audits, keys, ledger, monitor, recognition, searches, status, subjects
from faceaudit.service.schemas import Health
from faceaudit.service.state import Service, ServiceConfig

DESCRIPTION = """Face recognition that can be audited, as a shared service.

Every `/v1` route needs `Authorization: Bearer <key>`. The server, never the client, says who acted: every
ledger entry written here names the key's principal and key id. Identification results count only after
two other people have reviewed them. Errors are always `{"error": {"code", "message"}}`.
"""


def create_app(config: ServiceConfig | None = None, *, service: Service | None = None) -> FastAPI:
    """The app over ``service`` (or a new :class:`Service` for ``config``), closed when the app shuts down."""
    if service is None:
        if config is None:
            raise TypeError("create_app needs a config or a service")
        service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="faceaudit",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by faceaudit.service.docs from local files
        redoc_url=None,
    )
    app.state.service = service
    errors.install(app)
    app.add_middleware(UploadLimit, max_bytes=service.config.max_upload_bytes)
    app.add_middleware(Edge)  # outermost: headers, access log, the key before the body

    @app.get("/healthz", response_model=Health, tags=["health"], summary="liveness (no auth)")
    def healthz() -> dict:
        return {"status": "ok"}

    for module in (recognition, subjects, searches, ledger, audits, keys, status, monitor):
        app.include_router(module.router)
    console.install(app)
    docs.install(app)
    return app
