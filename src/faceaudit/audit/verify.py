"""``verify-report``: check a signed ``audit.json``, and recompute every number from its inputs."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from faceaudit.audit.signing import ReportSignatureError, verify
from faceaudit.errors import InputError, UsageError
from faceaudit.imaging import sha256_file

IGNORED = {"signature", "config.manifest", "config.templates", "config.scores", "config.root"}
"""Where a reproduction may differ without the numbers differing: file locations and the signature."""


@dataclass
class Verification:
    """What was checked: the signing key's fingerprint (None: not checked) and every difference found."""

    key_fingerprint: str | None = None
    reproduced: bool = False
    differences: list[tuple[str, object, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


class DuplicateKeyError(ValueError):
    """A JSON object with the same key twice."""


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise DuplicateKeyError(k)
        seen[k] = v
    return seen


def read_report(path: str | os.PathLike) -> dict:
    """``audit.json`` as a dict; refused (:class:`ReportSignatureError`) when any object repeats a key, since
    readers disagree on which of the values counts (Python keeps the last, others the first)."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh, object_pairs_hook=_no_duplicates)
    except OSError as exc:
        raise InputError(path, f"cannot read the report ({exc.strerror})") from None
    except DuplicateKeyError as exc:
        raise ReportSignatureError(
            f"{path}: the key {exc.args[0]!r} appears twice in one JSON object; a report with a duplicated "
            "key is refused, because readers disagree on which value counts"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    schema = str(doc.get("schema", "")) if isinstance(doc, dict) else ""
    if not schema.startswith(("faceaudit.audit/", "faceaudit.monitor/")):
        raise InputError(
            path,
            "not a faceaudit audit.json or monitor.json (no 'schema': 'faceaudit.audit/…' or 'faceaudit.monitor/…')",
        )
    return doc


def differences(old: object, new: object, where: str = "") -> list[tuple[str, object, object]]:
    """Every leaf where ``old`` and ``new`` differ, as (dotted path, old, new); numbers must be equal."""
    if where in IGNORED:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += differences(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{where}.{k}" if where else k)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for d in differences(a, b, f"{where}[{i}]")
        ]
    return [] if old == new else [(where, old, new)]


def _check_hash(diffs: list, what: str, path: str | os.PathLike, recorded: str | None) -> None:
    digest = sha256_file(path)
    if recorded != digest:
        diffs.append((f"config.{what}_sha256", recorded, digest))


def reproduce(
    doc: dict,
    *,
    templates: str | os.PathLike | None = None,
    scores: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
) -> list[tuple[str, object, object]]:
    """Recompute the audit that ``doc`` describes from the given inputs; every number that differs."""
    c = doc.get("config", {})
    diffs: list[tuple[str, object, object]] = []
    common = {
        "target_fmr": c.get("target_fmr"),
        "alpha": c.get("alpha", 0.5),
        "label_source": c.get("label_source"),
        "dataset": c.get("dataset"),
    }
    if c.get("input") == "scores":
        if scores is None:
            raise UsageError("--reproduce of a scores audit needs --scores FILE")
        from faceaudit.audit.given_scores import audit_scores

        _check_hash(diffs, "scores", scores, c.get("scores_sha256"))
        checks = c.get("input_checks") or {}
        result = audit_scores(
            scores,
            group_by=c.get("group_by"),
            lower_is_better=bool(c.get("lower_is_better")),
            dedupe=bool(checks.get("duplicates_removed")),
            **common,
        )
    else:
        if templates is None:
            raise UsageError("--reproduce of a manifest audit needs --templates FILE (the npz it was run on)")
        manifest = manifest or c.get("manifest")
        _check_hash(diffs, "manifest", manifest, c.get("manifest_sha256"))
        _check_hash(diffs, "templates", templates, c.get("templates_sha256"))
        options = {**common, "bootstrap": c.get("bootstrap", 0), "exclude": c.get("excluded")}
        if "identification" in doc:
            from faceaudit.audit.run_identification import audit_identification

            ident = doc["identification"]
            result = audit_identification(
                manifest,
                None,
                c.get("group_by"),
                templates=templates,
                target_fpir=[t["target_fpir"] for t in ident["targets"]],
                rank=ident["rank"],
                enrolled_fraction=ident["split"]["enrolled_fraction"],
                seed=ident["split"]["seed"],
                split=ident["split"].get("gallery"),  # the recorded split itself, not the seed's draw
                splits=(ident.get("splits") or {}).get("n_splits", 1),
                **options,
            )
        else:
            from faceaudit.audit.run import audit

            result = audit(manifest, None, c.get("group_by"), templates=templates, **options)
    return diffs + differences(doc, json.loads(result.to_json()))


def verify_report(
    path: str | os.PathLike,
    *,
    public_key: str | os.PathLike | None = None,
    reproduce_from: dict | None = None,
) -> Verification:
    """Check the signature (with ``public_key``) and, with ``reproduce_from`` (``templates``/``scores``/
    ``manifest``), recompute every number."""
    doc = read_report(path)
    v = Verification()
    if public_key is not None:
        v.key_fingerprint = verify(doc, public_key)
    if reproduce_from is not None:
        if str(doc.get("schema", "")).startswith("faceaudit.monitor/"):
            raise UsageError(
                "a monitor.json is not reproduced from inputs (its evidence is the review store)"
            )
        v.differences = reproduce(doc, **reproduce_from)
        v.reproduced = True
    return v
