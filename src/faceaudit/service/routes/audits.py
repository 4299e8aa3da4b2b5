"""``/v1/audits`` (auditor): run a demographic differential audit of uploaded comparison scores, or of a manifest
in the server's data folder (``--audit-data``), and read the reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, UploadFile
from fastapi.responses import FileResponse

from faceaudit.operations import cases
from faceaudit.service.audits import BadManifestName, NoDataFolder
from faceaudit.service.auth import Caller, get_service, require
from faceaudit.service.errors import ApiError
from faceaudit.service.routes import ERRORS
from faceaudit.service.schemas import AuditJob, ManifestAudit
from faceaudit.service.state import Service

router = APIRouter(prefix="/v1/audits", tags=["audits"], responses=ERRORS)
_auditor = require("auditor")
JobId = Annotated[str, Path(max_length=64)]


def _job(service: Service, job_id: str) -> dict:
    job = service.audits.get(job_id)
    if job is None:
        raise ApiError(404, "audit_not_found", f"no audit job {job_id!r}")
    return job


@router.post("", status_code=202, response_model=AuditJob, summary="audit a scores CSV in the background")
async def submit(
    scores: Annotated[UploadFile, File(description="CSV: score, mated, and the groups of both sides")],
    who: Annotated[Caller, Depends(_auditor)],
    service: Annotated[Service, Depends(get_service)],
    group_by: Annotated[str | None, Form(max_length=128, description="label column(s), e.g. sex")] = None,
) -> dict:
    data = await scores.read()
    return cases.start_audit(service, who, data, scores.filename or "scores.csv", group_by)


@router.get("/manifests", response_model=list[str], summary="the manifest CSVs in the server's data folder")
def manifests(
    who: Annotated[Caller, Depends(_auditor)], service: Annotated[Service, Depends(get_service)]
) -> list[str]:
    try:
        return service.audits.manifests()
    except NoDataFolder as exc:
        raise ApiError(409, "no_audit_data", str(exc)) from None


@router.post(
    "/manifest",
    status_code=202,
    response_model=AuditJob,
    summary="audit a manifest in the server's data folder",
)
def submit_manifest(
    body: ManifestAudit,
    who: Annotated[Caller, Depends(_auditor)],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    try:
        return cases.start_manifest_audit(service, who, body.manifest, body.group_by)
    except NoDataFolder as exc:
        raise ApiError(409, "no_audit_data", str(exc)) from None
    except BadManifestName as exc:
        raise ApiError(422, "invalid", f"manifest: {exc}", field="manifest") from None


@router.get("", response_model=list[AuditJob], summary="audit jobs, newest first")
def list_jobs(
    who: Annotated[Caller, Depends(_auditor)], service: Annotated[Service, Depends(get_service)]
) -> list[dict]:
    return service.audits.list()


@router.get("/{job_id}", response_model=AuditJob, summary="an audit job's state and progress")
def get_job(
    job_id: JobId,
    who: Annotated[Caller, Depends(_auditor)],
    service: Annotated[Service, Depends(get_service)],
) -> dict:
    return _job(service, job_id)


@router.get(
    "/{job_id}/report",
    response_class=FileResponse,
    responses={200: {"content": {"text/html": {}}}},
    summary="the audit's report.html",
)
def report(
    job_id: JobId,
    who: Annotated[Caller, Depends(_auditor)],
    service: Annotated[Service, Depends(get_service)],
) -> FileResponse:
    job = _job(service, job_id)
    path = service.audits.report(job_id)
    if path is None:
        raise ApiError(409, "not_ready", f"audit {job_id} is {job['state']}: {job['message']}")
    return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-store"})
