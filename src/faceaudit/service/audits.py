"""Audits run by the service in the background: a scores CSV in, ``report.html`` out, one job at a time.

Each job lives in its own folder under ``<db>.audits/`` (the uploaded CSV, ``status.json`` and the report), so
a page reload, or a restart, does not lose it; a job that a restart interrupted says so.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from faceaudit.ledger import utc_now

STATES = ("queued", "running", "done", "failed", "interrupted")


class AuditJobs:
    """Submit scores audits and follow them; ``run`` is called on one background thread."""

    def __init__(self, folder: str | os.PathLike, record) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._record = record  # (action, actor, **fields) -> ledger entry
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="faceaudit-audit")
        self._lock = threading.Lock()
        for status in self.folder.glob("*/status.json"):
            job = json.loads(status.read_text())
            if job["state"] in ("queued", "running"):
                self._write(
                    job["job_id"], state="interrupted", message="the server stopped before it finished"
                )

    def _path(self, job_id: str) -> Path:
        if not job_id or not all(c in "0123456789abcdef-" for c in job_id):
            raise KeyError(job_id)
        return self.folder / job_id

    def _write(self, job_id: str, **changes: Any) -> dict[str, Any]:
        with self._lock:
            path = self._path(job_id) / "status.json"
            job = json.loads(path.read_text()) if path.exists() else {"job_id": job_id}
            job.update(changes, updated_at=utc_now())
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(job, indent=2))
            tmp.replace(path)
            return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        try:
            path = self._path(job_id) / "status.json"
        except KeyError:
            return None
        return json.loads(path.read_text()) if path.exists() else None

    def list(self) -> list[dict[str, Any]]:
        jobs = [json.loads(p.read_text()) for p in self.folder.glob("*/status.json")]
        return sorted(jobs, key=lambda j: j["created_at"], reverse=True)

    def report(self, job_id: str) -> Path | None:
        job = self.get(job_id)
        if job is None or job["state"] != "done":
            return None
        return self._path(job_id) / "report" / "report.html"

    def submit(self, data: bytes, filename: str, *, group_by: str | None, actor) -> dict[str, Any]:
        """Store the CSV and queue its audit; returns the job."""
        job_id = str(uuid.uuid4())
        folder = self._path(job_id)
        folder.mkdir()
        (folder / "scores.csv").write_bytes(data)
        job = self._write(
            job_id,
            state="queued",
            progress=0,
            message="waiting for the audit worker",
            filename=filename,
            group_by=group_by,
            created_by=actor.operator,
            created_at=utc_now(),
        )
        self._executor.submit(self._run, job_id, group_by, actor, filename)
        return job

    def _run(self, job_id: str, group_by: str | None, actor, filename: str) -> None:
        from faceaudit.errors import FaceAuditError

        folder = self._path(job_id)
        self._write(job_id, state="running", progress=10, message="counting comparisons per group")
        try:
            from faceaudit.audit import audit_scores

            result = audit_scores(folder / "scores.csv", group_by=group_by or None)
            self._write(job_id, progress=80, message="writing the report")
            result.save(folder / "report")
        except FaceAuditError as exc:
            message = str(exc).replace(str(folder / "scores.csv"), filename)  # name the file as uploaded
            self._write(job_id, state="failed", progress=100, message=message)
            return
        except Exception as exc:  # a bad file must never take the worker down
            self._write(
                job_id, state="failed", progress=100, message=f"the audit failed ({type(exc).__name__})"
            )
            return
        entry = self._record(
            "audit",
            actor,
            params={
                "job_id": job_id,
                "scores_sha256": result.config.get("scores_sha256"),
                "group_by": group_by,
            },
            result={"groups": list(result.groups), "n_comparisons": result.config.get("n_comparisons")},
        )
        self._write(job_id, state="done", progress=100, message="done", ledger_entry=entry.seq)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
