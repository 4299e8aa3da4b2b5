"""What one server process holds for its lifetime: the gallery, its engine and index, the service store, the pool."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceaudit.gallery.follower import IndexFollower
from faceaudit.operations.keys import KeyHasher, parse_rate
from faceaudit.operations.records import open_service_store
from faceaudit.service.limits import RateLimiter
from faceaudit.service.pool import InferencePool
from faceaudit.service.probes import ProbeSealer
from faceaudit.service.refusals import AddressRefusals

DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
DEFAULT_RATE_LIMIT = "600/min"
DEFAULT_ANONYMOUS_LIMIT = "60/min"


@dataclass(slots=True)
class ServiceConfig:
    """How ``faceaudit serve`` runs: the gallery, the model, and the limits."""

    db: str | os.PathLike
    key_file: str | os.PathLike | None = None
    model: str = "sface"
    policy: str | None = None
    threshold: float | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    workers: int | None = None
    queue: int | None = None
    rate_limit: str = DEFAULT_RATE_LIMIT
    """Default per-key rate limit (N/s, N/min or N/h); a key may carry its own."""
    anonymous_rate_limit: str = DEFAULT_ANONYMOUS_LIMIT
    """Per client address: how many requests without a live key are refused with 401 before 429."""
    audit_data: str | os.PathLike | None = None
    """A server-side folder whose manifest CSVs auditors may audit by name (``--audit-data``); None: none."""


class Service:
    """One gallery, engine and in-memory index, loaded once; a store of keys and searches; the bounded pool.

    The gallery's SQLite connection serves one call at a time, so gallery calls hold ``gallery_lock``;
    decoding, detection and embedding run outside it, in parallel on the pool. An :class:`IndexFollower` keeps
    the in-memory index in step with other replicas' changes (PostgreSQL LISTEN/NOTIFY; a poll on SQLite).
    """

    def __init__(self, config: ServiceConfig) -> None:
        from faceaudit.gallery import Gallery
        from faceaudit.pipeline.engine import Engine

        self.config = config
        parse_rate(config.rate_limit)
        from faceaudit.gallery import default_key_file

        key_file = config.key_file if config.key_file is not None else default_key_file(config.db)
        kwargs: dict[str, Any] = {"threshold": config.threshold, **config.model_options}
        if config.policy:
            kwargs["policy"] = config.policy
        self.engine = Engine(config.model, **kwargs)
        self.gallery = Gallery(config.db, key_file=key_file, engine=self.engine, create=False)
        try:
            self.gallery_lock = threading.Lock()
            self.n_templates = self.gallery.rebuild_index()
            self.follower = IndexFollower(self.gallery, self.gallery_lock)
            self.store = open_service_store(config.db)
            self.hasher = KeyHasher.for_gallery(config.db, key_file)
            self.probes = ProbeSealer(self.hasher.gallery_key, self.gallery.gallery_id)
        except BaseException:
            self.gallery.close()
            raise
        self.follower.start()
        self.pool = InferencePool(config.workers, config.queue)
        self.limiter = RateLimiter()
        count, per = parse_rate(config.anonymous_rate_limit) or (60, 60.0)
        self.refusals = AddressRefusals(
            lambda params: self.store.record_denied("anonymous", None, params), count, per
        )
        from faceaudit.service.audits import AuditJobs

        audit_options: dict[str, Any] = {"model": config.model, "model_options": dict(config.model_options)}
        if config.policy:
            audit_options["policy"] = config.policy
        self.audits = AuditJobs(
            _audits_folder(config.db, self.gallery.gallery_id),
            self.store.record,
            data_dir=config.audit_data,
            audit_options=audit_options,
        )

    def close(self) -> None:
        self.audits.shutdown()
        self.follower.stop()
        self.pool.shutdown()
        self.refusals.flush()
        with self.gallery_lock:
            self.gallery.close()
        self.store.close()


def _audits_folder(db: str | os.PathLike, gallery_id: str) -> Path:
    """Where audit jobs live: beside a gallery file (``DB.audits``); for a PostgreSQL gallery, under
    ``$FACEAUDIT_AUDITS`` or ``~/.faceaudit/audits/<gallery id>``."""
    from faceaudit import pgsql

    if not pgsql.is_pg_url(db):
        return Path(f"{os.fspath(db)}.audits")
    root = os.environ.get("FACEAUDIT_AUDITS") or Path.home() / ".faceaudit" / "audits"
    return Path(root) / gallery_id
