"""``/v1/detect`` and ``/v1/verify``: recognition on uploaded images, nothing stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile

from faceaudit.operations import cases
from faceaudit.service.auth import Caller, get_service, require
from faceaudit.service.routes import ERRORS, read_upload
from faceaudit.service.schemas import DetectedFace, VerifyOut
from faceaudit.service.state import Service

router = APIRouter(prefix="/v1", tags=["recognition"], responses=ERRORS)
_may_recognise = require("enroller", "searcher")


@router.post("/detect", response_model=list[DetectedFace], summary="every face in an image")
async def detect(
    image: Annotated[UploadFile, File(description="the image")],
    who: Annotated[Caller, Depends(_may_recognise)],
    service: Annotated[Service, Depends(get_service)],
) -> list[dict]:
    upload = await read_upload(image, "image")
    return await service.pool.run(cases.detect, service, upload)


@router.post("/verify", response_model=VerifyOut, summary="1:1 verification of two images")
async def verify(
    image_a: Annotated[UploadFile, File(description="the first image")],
    image_b: Annotated[UploadFile, File(description="the second image")],
    who: Annotated[Caller, Depends(_may_recognise)],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    a = await read_upload(image_a, "image_a")
    b = await read_upload(image_b, "image_b")
    return await service.pool.run(cases.verify, service, a, b)
