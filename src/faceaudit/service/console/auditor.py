"""The auditor's console pages: the ledger browser with "verify chain", and background audits of scores CSVs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from faceaudit.accountable import AccountableText, TextRefused
from faceaudit.errors import FaceAuditError, LedgerIntegrityError
from faceaudit.ledger import utc_now
from faceaudit.operations import cases
from faceaudit.service.audits import BadManifestName, NoDataFolder
from faceaudit.service.console.common import (
    PAGE_SIZE,
    Refused,
    _form,
    _render,
    _service,
    _signed_in,
    done,
    redirect,
    router,
)

# --- auditor -------------------------------------------------------------------------------------------------

_FILTERS = ("operator", "action", "purpose", "case", "date")


def _ledger_page(request: Request, ctx, verdict: dict | None = None) -> Response:
    service = _service(request)
    f: dict[str, str] = {}
    for (
        k
    ) in _FILTERS:  # filter values are written to the ledger: accountable text, or refused naming the filter
        try:
            f[k] = AccountableText.optional(request.query_params.get(k), f"filter {k}") or ""
        except TextRefused as exc:
            raise Refused(422, str(exc)) from None
    try:
        page = max(0, int(request.query_params.get("page", "0")))
    except ValueError:
        page = 0
    if f["date"] and not _DATE_PREFIX.fullmatch(f["date"]):
        return _render(
            request,
            "ledger.html",
            "Ledger",
            ctx,
            422,
            f=f,
            entries=[],
            total=None,
            first=0,
            last=0,
            message=f"date filter {f['date']!r}: write a day (2026-07-01), a month (2026-07) or a year (2026)",
            error=True,
        )
    entries, total = cases.browse_ledger(service, ctx[0], dict(f), page, PAGE_SIZE)
    for e in entries:
        e["fields"] = _readable(e.get("result"))
    query = {k: v for k, v in f.items() if v}
    return _render(
        request,
        "ledger.html",
        "Ledger",
        ctx,
        f=f,
        entries=entries,
        verdict=verdict,
        total=total,
        first=page * PAGE_SIZE + 1 if entries else 0,
        last=page * PAGE_SIZE + len(entries),
        prev=urlencode({**query, "page": page - 1}) if page > 0 else None,
        next=urlencode({**query, "page": page + 1}) if (page + 1) * PAGE_SIZE < total else None,
    )


_DATE_PREFIX = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


def _readable(value: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """A ledger result as (field, shown, full) rows: nested keys joined with dots, long values shortened."""
    if isinstance(value, dict):
        rows: list[tuple[str, str, str]] = []
        for k, v in value.items():
            rows += _readable(v, f"{prefix}{k}.") if isinstance(v, dict) else _readable(v, f"{prefix}{k}")
        return rows
    if not prefix:
        return [] if value in (None, {}, []) else [("", str(value), str(value))]
    full = ", ".join(map(str, value)) if isinstance(value, list) else "" if value is None else str(value)
    shown = full if len(full) <= 24 else full[:12] + "…" + full[-6:]
    return [(prefix.rstrip("."), shown, full)]


@router.get("/ledger/export")
def ledger_export(request: Request) -> Response:
    """The whole chain as JSON, every hashed field included (so each ``entry_hash`` can be recomputed); logged."""
    who, _ = _signed_in(request, "auditor")
    body = cases.read_ledger(_service(request), who, 0, 10**9, fmt="console-json")
    return JSONResponse(
        body["entries"],
        headers={"Content-Disposition": 'attachment; filename="ledger.json"', "Cache-Control": "no-store"},
    )


@router.get("/ledger")
def ledger(request: Request) -> Response:
    return _ledger_page(request, _signed_in(request, "auditor"))


@router.post("/ledger/verify")
async def ledger_verify(request: Request) -> Response:
    ctx = _signed_in(request, "auditor")
    await _form(request, ctx[1])
    store = _service(request).store
    try:
        report = await run_in_threadpool(store.verify)
        verdict = {"intact": True, "message": report.message()}
    except LedgerIntegrityError as exc:
        verdict = {"intact": False, "message": f"chain broken: {exc}"}
    except FaceAuditError as exc:
        verdict = {"intact": False, "message": str(exc)}
    verdict["at"] = utc_now()
    request.app.state.ledger_verified = verdict  # for the home page: when it was last verified, and how
    return done(request, ctx[1], "/ui/ledger", "", verdict=verdict, message=None)


def _audits_page(request: Request, ctx, status: int = 200, **values: Any) -> Response:
    jobs = _service(request).audits
    try:
        manifests = jobs.manifests()
    except NoDataFolder:
        manifests = None  # no --audit-data: the manifest form is not offered
    return _render(
        request, "audits.html", "Audits", ctx, status, jobs=jobs.list(), manifests=manifests, **values
    )


@router.get("/audits")
def audits(request: Request) -> Response:
    return _audits_page(request, _signed_in(request, "auditor"))


@router.post("/audits/manifest")
async def submit_manifest_audit(request: Request) -> Response:
    ctx = _signed_in(request, "auditor")
    form = await _form(request, ctx[1])
    try:
        job = cases.start_manifest_audit(
            _service(request), ctx[0], str(form.get("manifest") or ""), str(form.get("group_by") or "")
        )
    except NoDataFolder as exc:
        raise Refused(409, str(exc)) from None
    except BadManifestName as exc:
        return _audits_page(request, ctx, 422, message=f"manifest: {exc}", error=True)
    return redirect(request, f"/ui/audits/{job['job_id']}")


@router.post("/audits")
async def submit_audit(request: Request) -> Response:
    ctx = _signed_in(request, "auditor")
    form = await _form(request, ctx[1])
    upload = form.get("scores")
    data = await upload.read() if hasattr(upload, "read") else b""
    if not data:
        return _audits_page(request, ctx, 422, message="choose a scores CSV", error=True)
    job = cases.start_audit(
        _service(request),
        ctx[0],
        data,
        upload.filename or "scores.csv",
        (form.get("group_by") or "").strip() or None,
    )
    return redirect(request, f"/ui/audits/{job['job_id']}")


@router.get("/audits/{job_id}")
def audit_page(request: Request, job_id: str) -> Response:
    ctx = _signed_in(request, "auditor")
    job = _service(request).audits.get(job_id)
    if job is None:
        raise Refused(404, f"no audit job {job_id}")
    return _render(request, "audit.html", f"Audit {job_id[:8]}", ctx, job=job)


@router.get("/audits/{job_id}/report.html")
def audit_report(request: Request, job_id: str) -> Response:
    _signed_in(request, "auditor")
    path = _service(request).audits.report(job_id)
    if path is None:
        raise Refused(404, f"audit {job_id} has no report (yet)")
    return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-store"})
