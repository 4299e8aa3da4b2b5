"""Audits run by the service in the background, one job at a time: a scores CSV in, or a manifest named under
the server's data folder (``faceaudit serve --audit-data DIR``), and ``report.html`` out.

Each job lives in its own folder under ``<db>.audits/`` (the uploaded CSV, ``status.json`` and the report), so
a page reload, or a restart, does not lose it; a job that a restart interrupted says so.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from faceaudit.ledger import utc_now

STATES = ("queued", "running", "done", "failed", "interrupted")
MAX_MANIFESTS = 1000
"""At most this many manifest names are listed (the first, in path order)."""


class NoDataFolder(LookupError):
    """The server was started without ``--audit-data``."""


class BadManifestName(ValueError):
    """A manifest name that is not a CSV file inside the data folder."""


class AuditJobs:
    """Submit scores audits and follow them; ``run`` is called on one background thread."""

    def __init__(
        self,
        folder: str | os.PathLike,
        record,
        *,
        data_dir: str | os.PathLike | None = None,
        audit_options: dict[str, Any] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)  # audit inputs and reports: readable by the server's user only
        self._record = record  # (action, actor, **fields) -> ledger entry
        self.data_dir = None if data_dir is None else Path(data_dir).resolve()
        self._audit_options = dict(audit_options or {})  # model, policy, model_options of faceaudit.audit
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

    def manifests(self) -> list[str]:
        """The CSV files under the data folder (names relative to it, ``/``-separated) that stay inside it."""
        if self.data_dir is None:
            raise NoDataFolder("the server has no data folder (start it with --audit-data DIR)")
        names = []
        for path in sorted(self.data_dir.rglob("*.csv")):
            if path.is_file() and path.resolve().is_relative_to(self.data_dir):
                names.append(path.relative_to(self.data_dir).as_posix())
                if len(names) >= MAX_MANIFESTS:
                    break
        return names

    def manifest_path(self, name: str) -> Path:
        """The manifest ``name`` under the data folder, symlinks resolved; ``BadManifestName`` otherwise."""
        if self.data_dir is None:
            raise NoDataFolder("the server has no data folder (start it with --audit-data DIR)")
        name = (name or "").strip()
        if not name or "\x00" in name:
            raise BadManifestName("give the name of a manifest CSV in the server's data folder")
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or "\\" in name:
            raise BadManifestName(f"{name!r}: give a name inside the data folder (no '..', no absolute path)")
        path = (self.data_dir / relative).resolve()
        if not path.is_relative_to(self.data_dir):
            raise BadManifestName(f"{name!r} leads outside the data folder")
        if path.suffix.lower() != ".csv" or not path.is_file():
            raise BadManifestName(f"{name!r}: no such manifest CSV in the data folder")
        return path

    def _check_images_inside(self, manifest: Path) -> None:
        """Every image path of ``manifest`` stays inside the data folder (symlinks resolved): an auditor must not
        read server files through a manifest whose rows lead out (``../``, an absolute path, a symlink)."""
        from faceaudit.audit.pairs import read_csv
        from faceaudit.csvfile import FIRST_DATA_LINE
        from faceaudit.errors import InputError

        assert self.data_dir is not None
        frame = read_csv(manifest, "manifest")  # a bad file is named as the audit would name it
        for i, image in enumerate(frame["path"] if "path" in frame.columns else []):
            image = str(image).strip()
            if image and not (manifest.parent / image).resolve().is_relative_to(self.data_dir):
                line = FIRST_DATA_LINE + i
                raise InputError(manifest, f"line {line}: its image path leads outside the data folder")

    def submit_manifest(self, name: str, *, group_by: str | None, actor) -> dict[str, Any]:
        """Queue the audit of manifest ``name`` (under the data folder; images relative to its folder)."""
        path = self.manifest_path(name)
        job_id = str(uuid.uuid4())
        self._path(job_id).mkdir(mode=0o700)
        group_by = (group_by or "").strip() or "sex"
        job = self._write(
            job_id,
            state="queued",
            progress=0,
            message="waiting for the audit worker",
            source="manifest",
            filename=path.relative_to(self.data_dir).as_posix(),
            group_by=group_by,
            created_by=actor.operator,
            created_at=utc_now(),
        )
        self._executor.submit(self._run_manifest, job_id, path, job["filename"], group_by, actor)
        return job

    def _progress(self, job_id: str):
        """A ``faceaudit.run_audit`` progress factory that writes each step into the job's status."""
        spans = {"embedding": (10, 70)}

        @contextmanager
        def progress(total: int, description: str):
            low, high = spans.get(description, (70, 90))
            done = [0, -1]
            self._write(job_id, progress=low, message=f"{description}: 0 of {total}")

            def advance(n: int = 1) -> None:
                done[0] += n
                pct = low + (high - low) * min(done[0], total) // max(total, 1)
                if pct != done[1]:
                    done[1] = pct
                    self._write(job_id, progress=pct, message=f"{description}: {done[0]} of {total}")

            yield advance

        return progress

    def _run_manifest(self, job_id: str, path: Path, name: str, group_by: str, actor) -> None:
        self._write(job_id, state="running", progress=5, message="reading the manifest")

        def work():
            from faceaudit.audit.run import audit

            groups = [g.strip() for g in group_by.split(",") if g.strip()]
            self._check_images_inside(path)
            result = audit(
                path,
                root=path.parent,
                group_by=groups if len(groups) > 1 else groups[0],
                progress=self._progress(job_id),
                **self._audit_options,
            )
            self._write(job_id, progress=90, message="writing the report")
            return result

        # name the manifest as the auditor did, not the server's paths
        result = self._execute(job_id, work, {str(path): name, str(self.data_dir): "<data folder>"})
        if result is None:
            return
        self._finish(
            job_id,
            actor,
            params={
                "manifest": name,
                "manifest_sha256": result.config.get("manifest_sha256"),
                "group_by": group_by,
            },
            result={
                "groups": list(result.groups),
                "n_images": result.config.get("n_images"),
                "n_templates": result.config.get("n_templates"),
            },
        )

    def submit(self, data: bytes, filename: str, *, group_by: str | None, actor) -> dict[str, Any]:
        """Store the CSV and queue its audit; returns the job."""
        job_id = str(uuid.uuid4())
        folder = self._path(job_id)
        folder.mkdir(mode=0o700)
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
        folder = self._path(job_id)
        self._write(job_id, state="running", progress=10, message="counting comparisons per group")

        def work():
            from faceaudit.audit import audit_scores

            result = audit_scores(folder / "scores.csv", group_by=group_by or None, dataset=filename)
            result.config["scores"] = filename  # the report names the uploaded file, not the server's copy
            self._write(job_id, progress=80, message="writing the report")
            return result

        result = self._execute(job_id, work, {str(folder / "scores.csv"): filename})  # the name as uploaded
        if result is None:
            return
        self._finish(
            job_id,
            actor,
            params={"scores_sha256": result.config.get("scores_sha256"), "group_by": group_by},
            result={"groups": list(result.groups), "n_comparisons": result.config.get("n_comparisons")},
        )

    def _execute(self, job_id: str, work, renames: dict[str, str]):
        """Run ``work()`` and save its report; on failure mark the job failed and return ``None``.

        Error messages name files as the auditor knows them (``renames``), never the server's paths; an
        unexpected error is reported by its type only, and never takes the worker thread down.
        """
        from faceaudit.errors import FaceAuditError

        try:
            result = work()
            result.save(self._path(job_id) / "report")
        except FaceAuditError as exc:
            message = str(exc)
            for server_path, shown in renames.items():
                message = message.replace(server_path, shown)
            self._write(job_id, state="failed", progress=100, message=message)
            return None
        except Exception as exc:
            self._write(
                job_id, state="failed", progress=100, message=f"the audit failed ({type(exc).__name__})"
            )
            return None
        return result

    def _finish(self, job_id: str, actor, *, params: dict[str, Any], result: dict[str, Any]) -> None:
        """Ledger the finished audit and mark the job done."""
        entry = self._record("audit", actor, params={"job_id": job_id, **params}, result=result)
        self._write(job_id, state="done", progress=100, message="done", ledger_entry=entry.seq)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
