"""``audit-identification``: the 1:1 audit and the 1:N identification audit of one manifest, in one report."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from faceaudit.audit.headline_1n import identification_sentences
from faceaudit.audit.ident_bootstrap import bootstrap_identification
from faceaudit.audit.ident_spread import spread
from faceaudit.audit.identification import (
    DEFAULT_RANK,
    IdentificationResult,
    identification_rates,
    search,
    split_subjects,
)
from faceaudit.audit.identification import DEFAULT_TARGETS as DEFAULT_FPIRS
from faceaudit.audit.label_errors import exclude_images, suspects_1n
from faceaudit.audit.label_errors import warning as suspect_warning
from faceaudit.audit.pairs import UNLABELLED, load_manifest
from faceaudit.audit.result import AuditResult
from faceaudit.audit.run import (
    DEFAULT_BOOTSTRAP,
    _dask_client,
    _no_progress,
    audit,
    targets_of,
    templates_for_manifest,
)
from faceaudit.audit.splits import Split, read_split, split_from_record, split_record
from faceaudit.errors import UsageError
from faceaudit.models.registry import DEFAULT_MODEL

__all__ = ["audit_identification", "identify"]


def identify(
    templates: np.ndarray,
    subject: np.ndarray,
    group_index: np.ndarray,
    groups: list[str],
    *,
    target_fpir: Sequence[float] = DEFAULT_FPIRS,
    rank: int = DEFAULT_RANK,
    enrolled_fraction: float = 0.5,
    seed: int | None = 0,
    progress=None,
    dask: Any = None,
    split: Split | None = None,
    labels: tuple[Sequence[str], Sequence[str]] | None = None,
    bootstrap: int = 0,
) -> IdentificationResult:
    """The 1:N audit of templates in memory (failed images removed): split, search, rates per probe group.

    ``split`` reuses a given split instead of the seeded draw; ``labels`` (subject ids, paths) lets the report
    record the gallery in full; ``bootstrap`` resamples give subject-clustered intervals. ``dask`` (a ``distributed.Client``) runs the searches on its cluster, with
    the same result."""
    if rank < 1:
        raise UsageError(f"--rank must be 1 or more, not {rank}")
    if not 0 < enrolled_fraction < 1:
        raise UsageError(f"--enrolled-fraction must lie strictly between 0 and 1, not {enrolled_fraction}")
    if split is None:
        split = split_subjects(subject, enrolled_fraction=enrolled_fraction, seed=0 if seed is None else seed)
    facts = _split_facts(split, labels)
    probes = np.concatenate([split.mated, split.non_mated])
    mate = np.concatenate([split.mate, np.full(len(split.non_mated), -1, np.intp)])
    mated = mate >= 0
    warn = []
    if len(split.gallery) == 0 or len(probes) == 0:
        warn.append("too few subjects for a 1:N audit: no gallery or no searches")
        return IdentificationResult(list(groups), rank, facts, {}, [], warn)
    with (progress or _no_progress)(len(probes), "searching") as advance:
        if dask is None:
            searches = search(templates[split.gallery], templates[probes], mate, top=rank, progress=advance)
        else:
            from faceaudit.audit.distributed import search_dask

            searches = search_dask(
                templates[split.gallery], templates[probes], mate, client=dask, top=rank, progress=advance
            )
    probe_group = group_index[probes]
    gallery_group = group_index[split.gallery]
    targets = identification_rates(
        searches, probe_group, mated, gallery_group, groups, targets=targets_of(target_fpir), rank=rank
    )
    if not mated.any():
        warn.append("no enrolled subject has a second image: FNIR cannot be measured (no mated searches)")
    for g_i, g in enumerate(groups):
        sel = probe_group == g_i
        if not (sel & mated).any():
            warn.append(f"group {g!r} has no mated searches: its FNIR is not measurable")
        if not (sel & ~mated).any():
            warn.append(f"group {g!r} has no non-mated searches: its FPIR is not measurable")
    for t in targets:
        if t.threshold is not None and not t.measurable:
            warn.append(
                f"only {int((~mated).sum())} non-mated searches: a threshold for FPIR {t.target_fpir:g} needs "
                f"at least {int(np.ceil(3 / t.target_fpir))} (rule of three)"
            )
    boot = {}
    if bootstrap:
        boot = bootstrap_identification(
            searches, subject[probes], probe_group, mated, groups, targets, rank=rank, n_boot=bootstrap
        )
    checked = {}
    if labels is not None:
        ids, names = (np.asarray(v, object) for v in labels)
        top1 = searches.candidates[:, 0] if searches.candidates.shape[1] else np.zeros(len(probes), np.intp)
        checked = suspects_1n(
            searches.scores[:, 0] if searches.scores.shape[1] else np.full(len(probes), -np.inf),
            top1, searches.mate_score, mated, names[probes], ids[probes], names[split.gallery], ids[split.gallery],
        )  # fmt: skip
        note = suspect_warning(checked)
        if note:
            warn.append(note)
    composition = {g: int((gallery_group == i).sum()) for i, g in enumerate(groups)}
    composition["unlabelled"] = int((gallery_group == UNLABELLED).sum())
    return IdentificationResult(
        list(groups), rank, facts, composition, targets, warn, boot, label_check=checked
    )


def _split_facts(split: Split, labels) -> dict:
    facts = {
        "seed": split.seed,
        "enrolled_fraction": split.enrolled_fraction,
        "gallery_size": int(len(split.gallery)),
        "mated_searches": int(len(split.mated)),
        "non_mated_searches": int(len(split.non_mated)),
        "rule": "one image of each enrolled subject in the gallery (listed in 'gallery', in order), their "
        "other images mated searches; every image of a never-enrolled subject a non-mated search",
    }
    if labels is not None:
        facts["gallery"] = split_record(split, *labels)
    return facts


def audit_identification(
    manifest: str | os.PathLike,
    root: str | os.PathLike | None = None,
    group_by: str | Sequence[str] = "sex",
    *,
    templates: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    target_fpir: Sequence[float] = DEFAULT_FPIRS,
    rank: int = DEFAULT_RANK,
    enrolled_fraction: float = 0.5,
    seed: int | None = 0,
    progress=None,
    dask: Any = None,
    split: str | os.PathLike | list | None = None,
    splits: int = 1,
    **audit_options,
) -> AuditResult:
    """The 1:1 audit of ``manifest`` (see :func:`faceaudit.audit.run.audit`) with the 1:N audit added as
    ``result.identification``. Without ``templates`` the images are embedded once, into ``out/templates.npz``
    (reusable with ``templates=``). ``dask`` (an address, ``local:N`` or a client) runs the all-pairs
    comparison and the searches on a Dask cluster, with the same result. ``split`` reuses a recorded split (a
    file or its ``gallery`` list); ``splits`` K ≥ 2 repeats the split with seeds seed … seed+K−1 and adds the
    spread across them (``identification.splits``), which the headline then uses."""
    if splits < 1:
        raise UsageError(f"--splits must be 1 or more, not {splits}")
    if isinstance(dask, str):  # one client (and one LocalCluster) for the 1:1 and the 1:N parts
        with _dask_client(dask) as client:
            return audit_identification(
                manifest, root, group_by, templates=templates, out=out, target_fpir=target_fpir, rank=rank,
                enrolled_fraction=enrolled_fraction, seed=seed, progress=progress, dask=client, split=split,
                splits=splits, **audit_options,
            )  # fmt: skip
    if templates is None:
        if root is None or out is None:
            raise UsageError("give --templates, or --root and --out (the templates are embedded into --out)")
        from faceaudit.pipeline.batch import embed_paths

        m = load_manifest(manifest, group_by)
        paths = [p.strip() for p in m.frame["path"]]
        opts = {k: audit_options[k] for k in ("model", "policy", "workers") if k in audit_options}
        opts["model"] = opts.get("model") or DEFAULT_MODEL
        model_options = audit_options.get("model_options") or {}
        with (progress or _no_progress)(len(paths), "embedding") as advance:
            if dask is None:
                er = embed_paths(paths, root, progress=advance, **opts, **model_options)
            else:
                from faceaudit.pipeline.dask_embed import embed_paths_dask

                opts.pop("workers", None)  # the cluster's workers embed
                er = embed_paths_dask(paths, root, client=dask, progress=advance, **opts, **model_options)
        templates = Path(out) / "templates.npz"
        er.save(templates)
    result = audit(
        manifest, root, group_by, templates=templates, progress=progress, dask=dask, **audit_options
    )
    m = load_manifest(manifest, group_by)
    if audit_options.get("exclude") is not None:
        m, _ = exclude_images(m, audit_options["exclude"])
    _, er = templates_for_manifest(templates, [p.strip() for p in m.frame["path"]])
    ok = np.array([s == "ok" for s in er.status], bool)
    subject_ids = m.frame["subject_id"].str.strip().to_numpy()[ok]
    paths = np.array([p.strip() for p in m.frame["path"]], dtype=object)[ok]
    given = None
    if split is not None:
        record = split if isinstance(split, list) else read_split(split)
        given = split_from_record(
            record,
            subject_ids,
            paths,
            m.subject[ok],
            "split" if isinstance(split, list) else split,
            seed=seed,
        )
    run = partial(
        identify, er.templates[ok], m.subject[ok], m.group_index[ok], m.groups, target_fpir=target_fpir,
        rank=rank, enrolled_fraction=enrolled_fraction, progress=progress, dask=dask, labels=(subject_ids, paths),
    )  # fmt: skip
    result.identification = run(
        seed=seed, split=given, bootstrap=audit_options.get("bootstrap", DEFAULT_BOOTSTRAP)
    )
    if splits > 1:
        first = 0 if seed is None else seed
        seeds = [first + k for k in range(splits)]
        others = [run(seed=s) for s in seeds[1:]]
        result.identification.splits = spread([result.identification, *others], seeds)
    result.warnings.extend(f"1:N: {w}" for w in result.identification.warnings)
    result.headline = " ".join(
        p for p in (result.headline, identification_sentences(result.identification)) if p
    )
    return result
