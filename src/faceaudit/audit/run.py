"""Running an audit: from a manifest (embedding or reusing templates), from templates, or from scores.

``audit(manifest, root, group_by="sex")`` embeds (or reuses templates), compares every pair with the streaming
comparator (:mod:`faceaudit.audit.scores`), and returns an :class:`AuditResult`; ``audit_scores`` audits
another system's scores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faceaudit.audit.analysis import DEFAULT_TARGETS, analyse
from faceaudit.audit.bootstrap import ClusteredBootstrap
from faceaudit.audit.comparator import BLAS_THREADS, Keep, compare_sorted
from faceaudit.audit.fairness import alphas
from faceaudit.audit.headline import headline
from faceaudit.audit.intervals import clopper_pearson
from faceaudit.audit.label_errors import bulk_threshold_1to1, exclude_images, suspects_1to1
from faceaudit.audit.label_errors import warning as suspect_warning
from faceaudit.audit.metrics import threshold_index
from faceaudit.audit.pairs import UNLABELLED, Manifest, load_manifest
from faceaudit.audit.result import SCHEMA, AuditResult
from faceaudit.audit.scores import sort_templates
from faceaudit.audit.signing import model_file_sha256
from faceaudit.audit.templates_file import check_model, read_templates
from faceaudit.errors import InputError, UsageError
from faceaudit.imaging import sha256_file
from faceaudit.models.registry import DEFAULT_MODEL

__all__ = ["audit", "audit_templates", "AuditResult", "DEFAULT_TARGETS", "SCHEMA"]

DEFAULT_BOOTSTRAP = 1000
"""Subject-clustered bootstrap resamples by default (0: Clopper–Pearson intervals only)."""

Progress = Callable[[int, str], Any]


@contextmanager
def _no_progress(total: int, description: str):
    yield lambda n=1: None


def targets_of(target_fmr: float | Sequence[float]) -> list[float]:
    t = [float(target_fmr)] if isinstance(target_fmr, (int, float)) else [float(v) for v in target_fmr]
    if not t or any(not 0 < v < 1 for v in t):
        raise UsageError("--target-fmr values must lie strictly between 0 and 1, e.g. 1e-3")
    return t


@contextmanager
def _dask_client(dask: Any):
    """A Dask client for ``dask`` (an address or ``local:N``), or ``dask`` itself (a client or None)."""
    if not isinstance(dask, str):
        yield dask
        return
    from faceaudit.dask_cluster import dask_client

    with dask_client(dask) as client:
        yield client


def faceaudit_version() -> str:
    from faceaudit import __version__

    return __version__


def audit_templates(
    templates: np.ndarray,
    group_index: np.ndarray,
    subject: np.ndarray,
    groups: list[str],
    *,
    target_fmr: float | Sequence[float] = DEFAULT_TARGETS,
    alpha: float | dict[str, float] = 0.5,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    group_info: dict | None = None,
    config: dict | None = None,
    warnings: Sequence[str] = (),
    progress: Progress | None = None,
    dask: Any = None,
    label_check: tuple[Sequence[str], Sequence[str]] | None = None,
) -> AuditResult:
    """Audit templates already in memory (rows of failed images removed). ``group_index`` -1: no label.

    ``dask`` (a scheduler address, ``local:N`` or a ``distributed.Client``) runs the all-pairs comparison on a
    Dask cluster (:mod:`faceaudit.audit.distributed`); the counts are the in-process counts. ``label_check``
    (each template's path and subject id) lists suspected label errors (:mod:`faceaudit.audit.label_errors`).
    The comparison keeps the pairs that the bootstrap and the label check need as it counts
    (:class:`~faceaudit.audit.comparator.Keep`); on Dask the bootstrap's take a second round of tasks over the
    same-group tiles, on the workers (:func:`~faceaudit.audit.distributed.compare_sorted_dask`).
    """
    n = len(templates)
    targets = targets_of(target_fmr)
    label_threshold = bulk_threshold_1to1(templates, subject) if label_check is not None else None
    st = sort_templates(templates, group_index, subject, groups)
    keep = Keep(fmr=max(targets) if bootstrap else None, score=label_threshold)
    with _dask_client(dask) as client, (progress or _no_progress)(n * (n - 1) // 2, "comparing") as advance:
        if client is None:
            counts, kept = compare_sorted(st, keep=keep, progress=advance)
        else:
            from faceaudit.audit.distributed import compare_sorted_dask

            counts, kept = compare_sorted_dask(st, client=client, keep=keep, progress=advance)
            if config is not None:
                workers = client.nthreads()
                config["comparison_on"] = (
                    f"Dask: {len(workers)} workers, {sum(workers.values())} threads, "
                    f"BLAS threads per task {BLAS_THREADS}"
                )
    boot = None
    if bootstrap:
        total = counts.non_mated_total()
        ks = [k for k in (threshold_index(total, t) for t in targets) if k is not None]
        if ks:
            boot = ClusteredBootstrap.from_templates(st, counts, min(ks), bootstrap, kept=kept)
    result = analyse(
        counts,
        targets=targets,
        alpha=alpha,
        group_info=group_info,
        config=config,
        bootstrap=boot,
        warnings=warnings,
    )
    result.headline = headline(result)
    if label_check is not None:
        candidates = None
        if kept.score == label_threshold and st.order is not None:
            a, b, _ = kept.above
            candidates = (st.order[a], st.order[b])
        paths, ids = label_check
        result.label_check = suspects_1to1(
            templates, subject, paths, ids, threshold=label_threshold, candidates=candidates
        )
        note = suspect_warning(result.label_check)
        if note:
            result.warnings.append(note)
    return result


def _group_info(
    groups: list[str], gi: np.ndarray, status: list[str], n_faces: np.ndarray, policy: str
) -> dict:
    ok = np.array([s == "ok" for s in status], bool)
    no_face = np.array([s == "no_face" for s in status], bool)
    info = {}
    for g_i, g in enumerate(groups):
        sel = gi == g_i
        n_img, n_ok = int(sel.sum()), int((sel & ok).sum())
        lo, hi, _ = clopper_pearson(n_img - n_ok, n_img)
        info[g] = {
            "n_images": n_img,
            "n_templates": n_ok,
            "n_fte": n_img - n_ok,
            "n_no_face": int((sel & no_face).sum()),
            "n_unreadable": int((sel & ~ok & ~no_face).sum()),
            "fte": (n_img - n_ok) / n_img if n_img else None,
            "fte_ci_low": lo,
            "fte_ci_high": hi,
            "n_multi_face": int((sel & (n_faces > 1)).sum()),
            "policy": policy,
        }
    return info


def audit(
    manifest: str | os.PathLike,
    root: str | os.PathLike | None = None,
    group_by: str | Sequence[str] = "sex",
    *,
    templates: str | os.PathLike | None = None,
    model: str | None = None,
    policy: str = "central",
    workers: int = 1,
    target_fmr: float | Sequence[float] = DEFAULT_TARGETS,
    alpha: float | dict[str, float] = 0.5,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    label_source: str | None = None,
    dataset: str | None = None,
    compare_policies: bool = False,
    progress: Progress | None = None,
    model_options: dict | None = None,
    extra_warnings: Sequence[str] = (),
    dask: Any = None,
    exclude: str | os.PathLike | None = None,
    label_check: bool = True,
) -> AuditResult:
    """Audit a face recognition model on a labelled manifest (``path``, ``subject_id`` and label columns).

    Images are embedded from ``root`` with ``model`` (default sface), or taken from ``templates`` (an
    ``faceaudit embed`` npz; a ``model`` that did not make them is refused). ``exclude`` (CSV: ``path``,
    ``reason``) removes images first; ``label_check`` lists non-mated pairs above the median mated score. Every pair of
    templates is compared; mated pairs share a non-empty ``subject_id``. A global threshold is set for each
    ``target_fmr`` on the overall FMR, and each group's FMR/FNMR is measured there (same-group comparisons).
    With ``compare_policies`` the audit is rerun with every face-selection policy (needs ``root``). ``dask`` (a
    scheduler address or ``local:N``) embeds and compares on a Dask cluster.
    """
    if isinstance(dask, str):  # one client (and one LocalCluster) for embedding and comparing
        options = {k: v for k, v in locals().items() if k not in ("manifest", "root", "group_by", "dask")}
        with _dask_client(dask) as client:
            return audit(manifest, root, group_by, dask=client, **options)
    client = dask
    targets = targets_of(target_fmr)
    m = load_manifest(manifest, group_by, label_source_text=label_source)
    excluded = None
    if exclude is not None:
        m, excluded = exclude_images(m, exclude)
    paths = [p.strip() for p in m.frame["path"]]
    progress = progress or _no_progress
    file_warnings: list[str] = []
    if templates is not None:
        file_warnings, er = templates_for_manifest(templates, paths)
        check_model(templates, model, er.model_id)
    elif root is None:
        raise UsageError("give --root (the folder the manifest's paths are relative to) or --templates")
    elif client is not None:
        from faceaudit.pipeline.dask_embed import embed_paths_dask

        with progress(len(paths), "embedding") as advance:
            er = embed_paths_dask(
                paths,
                root,
                client=client,
                model=model or DEFAULT_MODEL,
                policy=policy,
                progress=advance,
                **(model_options or {}),
            )
    else:
        from faceaudit.pipeline.batch import embed_paths

        with progress(len(paths), "embedding") as advance:
            er = embed_paths(
                paths,
                root,
                model=model or DEFAULT_MODEL,
                policy=policy,
                workers=workers,
                progress=advance,
                **(model_options or {}),
            )
    vecs, status, n_faces = er.templates, er.status, er.n_faces
    model_id, used_policy = er.model_id, er.policy
    ok = np.array([s == "ok" for s in status], bool)
    warn = [*extra_warnings, *file_warnings, *_manifest_warnings(m, ok)]
    config = {
        "input": "manifest",
        "dataset": dataset or Path(manifest).name,
        "manifest": str(manifest),
        "manifest_sha256": m.sha256,
        "root": None if root is None else str(root),
        "templates": None if templates is None else str(templates),
        "templates_sha256": None if templates is None else sha256_file(templates),
        "group_by": m.group_by,
        "model_id": model_id,
        "model_sha256": model_file_sha256(model_id),
        "runtime": er.runtime or "not recorded in the templates file",
        "policy": used_policy,
        "target_fmr": targets,
        "alpha": alphas(alpha),
        "bootstrap": bootstrap,
        "label_source": m.label_source,
        "n_images": len(paths),
        "n_templates": int(ok.sum()),
        "comparison": "cosine similarity of L2-normalised templates; a score >= threshold is a match",
        "same_group_rule": "a comparison counts for group g when both images are in g",
        "faceaudit_version": faceaudit_version(),
    }
    if excluded is not None:
        config["excluded"] = excluded
        why = "; ".join(f"{r} ({n})" for r, n in excluded["reasons"].items())
        warn.append(f"{excluded['images_excluded']} images excluded ({excluded['file']}): {why}")
    result = audit_templates(
        vecs[ok],
        m.group_index[ok],
        m.subject[ok],
        m.groups,
        target_fmr=targets,
        alpha=alpha,
        bootstrap=bootstrap,
        group_info=_group_info(m.groups, m.group_index, status, np.asarray(n_faces), used_policy),
        config=config,
        warnings=warn,
        progress=progress,
        dask=client,
        label_check=(np.asarray(paths, object)[ok], m.frame["subject_id"].str.strip().to_numpy()[ok])
        if label_check
        else None,
    )
    if compare_policies:
        if root is None:
            raise UsageError("--compare-policies re-embeds the images with each policy: give --root")
        rerun = partial(
            audit,
            manifest,
            root,
            group_by,
            model=model,
            workers=workers,
            target_fmr=targets,
            alpha=alpha,
            label_source=label_source,
            dataset=dataset,
            progress=progress,
            model_options=model_options,
            dask=client,
        )
        result.policy_comparison = _compare_policies(result, rerun)
    return result


def templates_for_manifest(templates: str | os.PathLike, paths: list[str]):
    """The rows of a templates npz for ``paths``, in manifest order (``EmbedResult``), and its warnings."""
    er, warn = read_templates(templates)
    where = {p: i for i, p in reversed(list(enumerate(er.paths)))}
    missing = [p for p in paths if p not in where]
    if missing:
        raise InputError(
            templates,
            f"{len(missing)} manifest paths are not in the templates file (first: {missing[0]!r}); "
            "embed this manifest with `faceaudit embed`",
        )
    rows = np.array([where[p] for p in paths], np.intp)
    return warn, er.take(rows)


def _images(n: int) -> str:
    return f"{n:,} image" if n == 1 else f"{n:,} images"


def _manifest_warnings(m: Manifest, ok: np.ndarray) -> list[str]:
    """What the manifest and the embedding leave unmeasured: unlabelled images, failures, no repeat subjects."""
    warn = []
    n_unl = int((m.group_index == UNLABELLED).sum())
    if n_unl:
        warn.append(
            f"{_images(n_unl)} {'has' if n_unl == 1 else 'have'} an empty {'/'.join(m.group_by)} label: "
            f"{'it counts' if n_unl == 1 else 'they count'} in the overall rates only"
        )
    n_fail = int((~ok).sum())
    if n_fail:
        warn.append(f"{_images(n_fail)} gave no template (no face or unreadable): see fte per group")
    if m.subject.size and len(np.unique(m.subject)) == len(m.subject):
        warn.append(
            "no subject has two images (the data set has no repeat identities): only the non-mated side (FMR) "
            "can be measured. For a full audit, use "
            "a data set with identities, e.g. `faceaudit audit lfw/manifest.csv --root lfw --group-by sex`"
        )
    return warn


def _compare_policies(result: AuditResult, rerun: Callable[..., AuditResult]) -> pd.DataFrame:
    """The per-group rates of ``result`` beside those of ``rerun(policy=...)`` for every other policy."""
    from faceaudit.types import SELECTION_POLICIES

    results = {result.config["policy"]: result}
    for pol in SELECTION_POLICIES:
        if pol not in results:
            results[pol] = rerun(policy=pol)
    frames = []
    for pol, r in results.items():
        t = r.by_group[
            [
                "threshold",
                "n_multi_face",
                "fmr",
                "fnmr",
                "fmr_ci_low",
                "fmr_ci_high",
                "fnmr_ci_low",
                "fnmr_ci_high",
            ]
        ].copy()
        t.insert(0, "policy", pol)
        frames.append(t.reset_index())
    return pd.concat(frames, ignore_index=True).set_index(["target_fmr", "group", "policy"]).sort_index()
