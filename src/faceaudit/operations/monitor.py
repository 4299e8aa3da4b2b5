"""The post-market monitor as a use case: outcomes from the review store, declared groups from the gallery,
figures from :func:`faceaudit.audit.monitor.measure` (the one place that makes them, with its suppression)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faceaudit.audit import monitor as measures
from faceaudit.audit.monitor_baseline import baseline_from_audit
from faceaudit.errors import UsageError
from faceaudit.operations.context import Caller
from faceaudit.operations.context import Context as Service

if TYPE_CHECKING:
    from faceaudit.gallery import Gallery
    from faceaudit.gallery.values import Actor
    from faceaudit.operations.records import ServiceStore


def parse_when(text: str | None, field: str) -> datetime | None:
    """A period bound: ``YYYY-MM-DD`` or an ISO time (UTC unless it says otherwise); None when empty."""
    if text is None or not str(text).strip():
        return None
    try:
        t = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{field}: {text!r} is not a date (YYYY-MM-DD) or an ISO time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _stamp(t: datetime | None) -> str | None:
    """A bound in the stored searches' own format (``utc_now``), so text comparison orders it right."""
    if t is None:
        return None
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_monitor(
    gallery: Gallery,
    store: ServiceStore,
    actor: Actor,
    *,
    attribute: str = "sex",
    since: datetime | None = None,
    until: datetime | None = None,
    window_days: int = measures.DEFAULT_WINDOW_DAYS,
    k: int = measures.DEFAULT_K,
    baseline: dict[str, Any] | None = None,
    baseline_source: str = "audit.json",
    lock: AbstractContextManager[Any] | None = None,
) -> dict[str, Any]:
    """The monitor's document over ``[since, until)``; the run is a ledger entry (``monitor``) naming ``actor``.

    ``baseline`` is a pre-deployment ``audit.json`` (already read, and its signature checked by the caller);
    ``lock`` (the service's gallery lock) is held only while the gallery is read, not while figures are made."""
    if k < 2:
        raise UsageError("--k must be at least 2")
    if window_days < 1:
        raise UsageError("--window-days must be at least 1")
    outcomes = store.outcomes(_stamp(since), _stamp(until))
    with lock or nullcontext():
        declared = gallery.declared_groups(attribute)
        n_enrolled = len(gallery.subjects())
    base = None
    if baseline is not None:
        thresholds = sorted({o.threshold for o in outcomes})
        base = baseline_from_audit(baseline, thresholds[0] if thresholds else None, baseline_source)
    doc = measures.measure(
        outcomes,
        declared,
        n_enrolled,
        attribute=attribute,
        k=k,
        window_days=window_days,
        start=since,
        end=until,
        baseline=base,
    )
    entry = store.record(
        "monitor",
        actor,
        params={
            "attribute": attribute,
            "start": doc["period"]["start"],
            "end": doc["period"]["end"],
            "window_days": window_days,
            "k": k,
            "baseline": base["source"] if base else None,
        },
        result={"n_searches": len(outcomes), "n_alerts": len(doc["alerts"])},
    )
    doc["ledger_entry"] = entry.seq
    return doc


def monitor(
    service: Service,
    who: Caller,
    *,
    attribute: str = "sex",
    since: datetime | None = None,
    until: datetime | None = None,
    window_days: int = measures.DEFAULT_WINDOW_DAYS,
    k: int = measures.DEFAULT_K,
) -> dict[str, Any]:
    """The monitor for an auditor of the running service (no baseline: the CLI takes ``--baseline``)."""
    return run_monitor(
        service.gallery,
        service.store,
        who.actor,
        attribute=attribute,
        since=since,
        until=until,
        window_days=window_days,
        k=k,
        lock=service.gallery_lock,
    )
