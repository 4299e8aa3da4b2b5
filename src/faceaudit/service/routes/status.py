"""``/v1/index`` (admin, auditor): which gallery version this replica's search index reflects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from faceaudit.service.auth import Caller, get_service, require
from faceaudit.service.routes import ERRORS
from faceaudit.service.schemas import IndexStatus
from faceaudit.service.state import Service

router = APIRouter(prefix="/v1", tags=["status"], responses=ERRORS)


@router.get("/index", response_model=IndexStatus, summary="this replica's search index and its follower")
def index_status(
    who: Annotated[Caller, Depends(require("admin", "auditor"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    with service.gallery_lock:
        gallery_version = service.gallery.version
        index_version = service.gallery.index_version
    follower = service.follower
    return {
        "gallery_version": gallery_version,
        "index_version": index_version,
        "follower": {"running": follower.running, "catch_ups": follower.catch_ups, "errors": follower.errors},
    }
