"""Audit requests as use cases: start an audit of an uploaded scores CSV or of a manifest in the server's data
folder; a refused request is a ledger entry, as an accepted audit's result is (re-exported by
:mod:`faceaudit.operations.cases`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faceaudit.accountable import TextRefused
from faceaudit.errors import FaceAuditError
from faceaudit.operations.context import Caller
from faceaudit.operations.context import Context as Service


def start_audit(
    service: Service, who: Caller, data: bytes, filename: str, group_by: str | None
) -> dict[str, Any]:
    """Start an audit of an uploaded scores CSV in the background; a refusal is ledgered, as an accepted audit's
    result is."""
    params = {"scores": filename or "scores.csv", "group_by": group_by}
    with _refusal_ledgered(service, who, params):
        if not data:
            raise TextRefused("scores: the file is empty", "scores")
        return service.audits.submit(data, filename or "scores.csv", group_by=group_by, actor=who.actor)


def start_manifest_audit(
    service: Service, who: Caller, manifest: str, group_by: str | None
) -> dict[str, Any]:
    """Start an audit of a manifest in the server's data folder in the background; a refusal is ledgered."""
    with _refusal_ledgered(service, who, {"manifest": manifest, "group_by": group_by}):
        return service.audits.submit_manifest(manifest, group_by=group_by, actor=who.actor)


def refuse_audit(service: Service, who: Caller, params: dict[str, Any], reason: str) -> None:
    """Ledger an audit request that was refused (bad upload, no data folder, bad manifest name, bad field)."""
    service.store.record("audit", who.actor, params=params, result={"status": "refused", "reason": reason})


@contextmanager
def _refusal_ledgered(service: Service, who: Caller, params: dict[str, Any]) -> Iterator[None]:
    try:
        yield
    except (FaceAuditError, LookupError, ValueError) as exc:
        refuse_audit(service, who, params, str(exc))
        raise
