"""What a batch produces: one :class:`BatchRow` per image, gathered into an :class:`EmbedResult` (an ``.npz``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from faceaudit.errors import InputError
from faceaudit.types import Quality

NPZ_FORMAT = "faceaudit.templates/1"

Outcome = Literal["ok", "no_face", "error"]


@dataclass(frozen=True, slots=True)
class BatchRow:
    """What became of one image of a batch: a template, no face, or an error and why."""

    outcome: Outcome
    n_faces: int = 0
    template: np.ndarray | None = None
    quality: Quality | None = None
    reason: str = ""
    """Why the image failed (``outcome == "error"``): decode error, unsafe image, ..."""

    @property
    def status(self) -> str:
        """The status written to the npz: ``ok``, ``no_face`` or ``error: <reason>``."""
        return f"error: {self.reason}" if self.outcome == "error" else self.outcome

    @property
    def quality_values(self) -> tuple[float, float, float, float]:
        """``(detector_score, inter_eye_px, sharpness, yaw)``; NaN without a face."""
        q = self.quality
        if q is None:
            return (np.nan, np.nan, np.nan, np.nan)
        return (q.detector_score, q.inter_eye_px, q.sharpness, q.yaw)


@dataclass(slots=True)
class EmbedResult:
    """Per-image results of a batch, aligned with ``paths``."""

    paths: list[str]
    templates: np.ndarray
    status: list[str]
    n_faces: np.ndarray
    detector_score: np.ndarray
    inter_eye_px: np.ndarray
    sharpness: np.ndarray
    yaw: np.ndarray
    model_id: str
    policy: str
    runtime: str = ""
    """Where detection and embedding ran (e.g. ``detector=openvino-f32 embedder=openvino-bf16``)."""

    @classmethod
    def from_rows(
        cls,
        paths: Sequence[str],
        rows: Sequence[BatchRow],
        *,
        dim: int,
        model_id: str,
        policy: str,
        runtime: str,
    ) -> EmbedResult:
        """Gather per-image rows (in ``paths`` order); failed rows get zero templates and NaN quality."""
        templates = np.zeros((len(rows), dim), np.float32)
        quals = np.full((len(rows), 4), np.nan, np.float32)
        for i, row in enumerate(rows):
            if row.template is not None:
                templates[i] = row.template
                quals[i] = row.quality_values
        return cls(
            paths=list(paths),
            templates=templates,
            status=[r.status for r in rows],
            n_faces=np.array([r.n_faces for r in rows], np.int32),
            detector_score=quals[:, 0],
            inter_eye_px=quals[:, 1],
            sharpness=quals[:, 2],
            yaw=quals[:, 3],
            model_id=model_id,
            policy=policy,
            runtime=runtime,
        )

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def ok(self) -> np.ndarray:
        return np.array([s == "ok" for s in self.status], dtype=bool)

    def take(self, rows: Sequence[int] | np.ndarray) -> EmbedResult:
        """The result for the given row indices, in that order (model, policy and runtime kept)."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        return replace(
            self,
            paths=[self.paths[i] for i in idx],
            templates=self.templates[idx],
            status=[self.status[i] for i in idx],
            n_faces=self.n_faces[idx],
            detector_score=self.detector_score[idx],
            inter_eye_px=self.inter_eye_px[idx],
            sharpness=self.sharpness[idx],
            yaw=self.yaw[idx],
        )

    def rows_of(self, paths: Sequence[str]) -> np.ndarray:
        """Row indices of ``paths`` (each must be in the result; the first row wins for a repeated path)."""
        index: dict[str, int] = {}
        for i, p in enumerate(self.paths):
            index.setdefault(p, i)
        missing = [p for p in paths if p not in index]
        if missing:
            raise KeyError(f"{len(missing)} path(s) not in the templates, e.g. {missing[0]!r}")
        return np.array([index[p] for p in paths], dtype=np.int64)

    def save(self, out: str | os.PathLike) -> None:
        """Write the npz (atomically: a partial file never replaces a good one)."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez(
            tmp,
            templates=self.templates.astype(np.float32),
            path=np.array(self.paths, dtype=str),
            status=np.array(self.status, dtype=str),
            n_faces=self.n_faces.astype(np.int32),
            detector_score=self.detector_score.astype(np.float32),
            inter_eye_px=self.inter_eye_px.astype(np.float32),
            sharpness=self.sharpness.astype(np.float32),
            yaw=self.yaw.astype(np.float32),
            model_id=np.array(self.model_id),
            policy=np.array(self.policy),
            runtime=np.array(self.runtime),
            format=np.array(NPZ_FORMAT),
        )
        os.replace(tmp, out)


def load_templates(path: str | os.PathLike) -> EmbedResult:
    """Read an npz written by :func:`~faceaudit.pipeline.batch.embed_paths` / ``faceaudit embed``."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a faceaudit templates file ({exc})") from None
    with z:
        missing = {"templates", "path", "status", "n_faces", "model_id", "policy"} - set(z.files)
        if missing:
            raise InputError(path, f"templates file lacks arrays: {', '.join(sorted(missing))}")
        n = len(z["path"])

        def opt(name: str) -> np.ndarray:
            return z[name] if name in z.files else np.full(n, np.nan, np.float32)

        return EmbedResult(
            paths=[str(p) for p in z["path"]],
            templates=z["templates"].astype(np.float32),
            status=[str(s) for s in z["status"]],
            n_faces=z["n_faces"].astype(np.int32),
            detector_score=opt("detector_score"),
            inter_eye_px=opt("inter_eye_px"),
            sharpness=opt("sharpness"),
            yaw=opt("yaw"),
            model_id=str(z["model_id"]),
            policy=str(z["policy"]),
            runtime=str(z["runtime"]) if "runtime" in z.files else "",
        )
