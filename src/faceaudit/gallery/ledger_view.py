"""A gallery file's ledger opened without the gallery key, for auditors who verify and export."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faceaudit.errors import UsageError
from faceaudit.gallery import store
from faceaudit.ledger import Ledger, LedgerEntry, ledger_key_from_env, utc_now
from faceaudit.ledger.sqlite_store import SQLiteLedgerStore


class GalleryLedger:
    """The ledger of a gallery file, opened without the gallery key: auditors verify and export with it alone."""

    def __init__(self, path: str | os.PathLike, ledger_key: bytes | None = None) -> None:
        self.path = Path(path)
        self._conn = store.connect(self.path)
        meta = store.read_meta(self._conn)
        if not meta:
            self._conn.close()
            raise store.GalleryNotFoundError(
                f"{self.path}: not an initialised gallery (run 'faceaudit gallery init')"
            )
        self.gallery_id = meta["gallery_id"]
        self.ledger = Ledger(
            SQLiteLedgerStore(self._conn), key=ledger_key if ledger_key is not None else ledger_key_from_env()
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> GalleryLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def export(
        self, operator: str, since: int | str = 0, fmt: str = "jsonl"
    ) -> tuple[list[dict[str, Any]], LedgerEntry]:
        """Entries after seq ``since`` or from UTC time ``since`` (ISO 8601), hashes included, and the entry that logs
        this export, in one transaction."""
        started = utc_now()
        since_time = None
        if isinstance(since, str):
            try:
                since_time = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise UsageError(f"--since {since!r}: give a seq number or an ISO 8601 date/time") from None
            if since_time.tzinfo is not None:
                since_time = since_time.astimezone(UTC).replace(tzinfo=None)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if since_time is None:
                rows = list(self.ledger.export(int(since)))
            else:
                cut = since_time.strftime("%Y-%m-%dT%H:%M:%S.%f")
                rows = [r for r in self.ledger.export(0) if r["started_at"] >= cut]
            version = int(self._conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
            entry = self.ledger.append(
                "export",
                operator,
                started_at=started,
                gallery_id=self.gallery_id,
                gallery_version=version,
                params={"since": since, "format": fmt},
                result={"n_entries": len(rows)},
            )
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return rows, entry
