"""A gallery file's ledger opened without the gallery key, for auditors who verify and export."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from faceaudit.errors import UsageError
from faceaudit.gallery import locations, sqlite_file
from faceaudit.gallery.values import Actor
from faceaudit.ledger import Ledger, LedgerEntry, ledger_key_from_env, utc_now


class GalleryLedger:
    """The ledger of a gallery file, opened without the gallery key: auditors verify and export with it alone."""

    def __init__(self, path: str | os.PathLike, ledger_key: bytes | None = None) -> None:
        self.path = locations.location(path)
        if locations.is_file_missing(path):
            raise sqlite_file.GalleryNotFoundError(
                f"{self.path}: no gallery here (run 'faceaudit gallery init')"
            )
        self._repo = locations.open_repository(path)
        meta = self._repo.read_meta()
        if not meta:
            self._repo.close()
            raise sqlite_file.GalleryNotFoundError(
                f"{self.path}: not an initialised gallery (run 'faceaudit gallery init')"
            )
        try:
            self.gallery_id = sqlite_file.check_meta(meta, self.path)["gallery_id"]
        except BaseException:
            self._repo.close()
            raise
        self.ledger = Ledger(
            self._repo.ledger_store(),
            key=ledger_key if ledger_key is not None else ledger_key_from_env(),
            expect_signed=sqlite_file.ledger_signed(meta),
        )

    def close(self) -> None:
        """Close the file."""
        self._repo.close()

    def __enter__(self) -> GalleryLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def export(
        self,
        operator: str | Actor,
        since: int | str = 0,
        fmt: str = "jsonl",
        *,
        write: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> tuple[list[dict[str, Any]], LedgerEntry]:
        """Entries after seq ``since`` or from UTC time ``since`` (ISO 8601), hashes included, and the entry that logs
        this export, in one transaction. ``write`` receives the entries before the export is logged: when it raises,
        nothing is logged."""
        started = utc_now()
        actor = Actor.of(operator, "export needs the operator's name (--operator)")
        since_time = None
        if isinstance(since, str):
            try:
                since_time = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                raise UsageError(f"--since {since!r}: give a seq number or an ISO 8601 date/time") from None
            if since_time.tzinfo is not None:
                since_time = since_time.astimezone(UTC).replace(tzinfo=None)
        if self._repo.migrate_needed():
            self._repo.migrate()  # an older file: its ledger table gains the columns this entry needs
            self.ledger = Ledger(
                self._repo.ledger_store(), key=self.ledger.key, expect_signed=self.ledger.expect_signed
            )
        with self._repo.write():
            if since_time is None:
                rows = list(self.ledger.export(int(since)))
            else:
                cut = since_time.strftime("%Y-%m-%dT%H:%M:%S.%f")
                rows = [r for r in self.ledger.export(0) if r["started_at"] >= cut]
            if write is not None:
                write(rows)
            entry = self.ledger.append(
                "export",
                actor.operator,
                auth=actor.ledger_auth(),
                started_at=started,
                gallery_id=self.gallery_id,
                gallery_version=self._repo.version(),
                params={"since": since, "format": fmt},
                result={"n_entries": len(rows)},
            )
        return rows, entry
