"""Templates files for an audit: ``faceaudit embed``'s npz, or another tool's (accepted as an unknown model)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from faceaudit.errors import InputError, UsageError

UNKNOWN_MODEL = "unknown (templates from another tool)"
OUR_ARRAYS = ("status", "n_faces", "model_id", "policy")
TEMPLATE_ARRAYS = ("templates", "embeddings")
PATH_ARRAYS = ("path", "paths")


def read_templates(path: str | os.PathLike):
    """``(EmbedResult, warnings)`` for a templates npz.

    Our own npz is read by :func:`faceaudit.pipeline.batch.load_templates`. An npz from elsewhere needs only
    a 2-D ``templates`` (or ``embeddings``) array and a ``path`` (or ``paths``) array: it is accepted with a
    warning and recorded as an unknown model (every row counts as a face found; no FTE, no face counts). An
    all-zero row is a failed image. A non-finite value is refused, naming the image.
    """
    from faceaudit.pipeline.batch import EmbedResult, load_templates

    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            ours = all(a in files for a in OUR_ARRAYS)
            if not ours:
                t_name = next((a for a in TEMPLATE_ARRAYS if a in files), None)
                p_name = next((a for a in PATH_ARRAYS if a in files), None)
                if t_name is None or p_name is None:
                    raise InputError(
                        path,
                        f"a templates file needs a 'templates' and a 'path' array (it has: {sorted(files)})",
                    )
                x, paths = z[t_name], [str(p) for p in z[p_name]]
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable npz templates file ({exc})") from None
    if ours:
        er = load_templates(path)
        _require_finite(path, er.templates, er.paths)
        return er, []
    if x.ndim != 2 or len(x) != len(paths):
        raise InputError(path, f"'{t_name}' must be one row per path: shape {x.shape}, {len(paths)} paths")
    x = x.astype(np.float32)
    _require_finite(path, x, paths)
    n = len(paths)
    ok = np.any(x != 0, axis=1)
    nan = np.full(n, np.nan, np.float32)
    er = EmbedResult(
        paths=paths,
        templates=x,
        status=["ok" if v else "error: all-zero template" for v in ok],
        n_faces=ok.astype(np.int32),
        detector_score=nan,
        inter_eye_px=nan,
        sharpness=nan.copy(),
        yaw=nan.copy(),
        model_id=UNKNOWN_MODEL,
        policy="unknown",
        runtime="unknown (templates from another tool)",
    )
    missing = sorted(a for a in OUR_ARRAYS if a not in files)
    warning = (
        f"{path} lacks faceaudit's metadata ({', '.join(missing)}): accepted as templates of an unknown model; "
        "failure-to-enrol and several-face counts are not known (all-zero rows count as failures)"
    )
    return er, [warning]


def _require_finite(path: object, x: np.ndarray, paths: list[str]) -> None:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"the template of {paths[i]!r} (row {i}) holds a non-finite value")


def model_matches(model: str, model_id: str) -> bool:
    """True when the ``--model`` name ``model`` made templates recorded as ``model_id`` (``sface`` →
    ``sface-…``, ``onnx:PATH`` → ``onnx:<file name>:…``)."""
    if model.startswith("onnx:"):
        return model_id.startswith(f"onnx:{Path(model[5:]).name}:")
    return model_id == model or model_id.startswith(f"{model}-")


def check_model(templates: str | os.PathLike, model: str | None, model_id: str) -> None:
    """Refuse a ``--model`` that did not make ``templates``; nothing to check without ``--model`` or for
    templates of an unknown model (another tool's)."""
    if model is None or model_id == UNKNOWN_MODEL or model_matches(model, model_id):
        return
    raise UsageError(
        f"--model {model} does not match the templates in {templates} (model_id {model_id!r}); give the "
        "templates that model made, or leave --model out to audit the templates' own model"
    )
