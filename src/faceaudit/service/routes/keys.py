"""``/v1/keys`` (admin: create, list, revoke) and ``/v1/me`` (any key: who am I)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from faceaudit.operations import cases
from faceaudit.service.auth import Caller, any_role, get_service, require
from faceaudit.service.routes import ERRORS
from faceaudit.service.schemas import KeyIn, KeyOut, Me, NewKeyOut, RevokeOut
from faceaudit.service.state import Service

router = APIRouter(prefix="/v1", tags=["keys"], responses=ERRORS)


@router.get("/me", response_model=Me, summary="the principal, key id and roles of the calling key")
def me(who: Annotated[Caller, Depends(any_role)]) -> dict:
    return {"principal": who.name, "key_id": who.key_id, "roles": list(who.roles)}


@router.post("/keys", status_code=201, response_model=NewKeyOut, summary="create a key (shown once)")
def create_key(
    body: KeyIn,
    who: Annotated[Caller, Depends(require("admin"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    return cases.create_key(
        service,
        who,
        principal=body.principal,
        roles=body.roles,
        expires=body.expires,
        rate_limit=body.rate_limit,
    )


@router.get("/keys", response_model=list[KeyOut], summary="every key (never the key itself)")
def list_keys(
    who: Annotated[Caller, Depends(require("admin"))],
    service: Annotated[Service, Depends(get_service)],
) -> list[dict]:
    return [k.public() for k in service.store.list_keys()]


@router.delete("/keys/{key_id}", response_model=RevokeOut, summary="revoke a key, from the next request on")
def revoke_key(
    key_id: Annotated[str, Path(max_length=64)],
    who: Annotated[Caller, Depends(require("admin"))],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    return cases.revoke_key(service, who, key_id)
