"""The spread of the 1:N rates across repeated splits (``--splits K``): which subjects are enrolled moves the
rates more than resampling does, so the report gives, per rate and ratio, the median, the range across
splits and how often the direction of the main split's difference holds."""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Sequence

KEYS = ("fnir_rank1", "fnir_rank_r", "fpir")
RATIO_KEYS = ("fpir", "fnir_rank1")


def gallery_sha256(record: Sequence[Sequence[str]]) -> str:
    """SHA-256 of a split's recorded gallery (canonical JSON), to recognise the same split again."""
    return hashlib.sha256(json.dumps(record, separators=(",", ":")).encode()).hexdigest()


def _summary(values: list[float]) -> dict:
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def spread(results: Sequence, seeds: Sequence[int]) -> dict:
    """Per target FPIR: each group's rates across the splits, and the main split's extreme pair's ratio
    across them (``results[0]`` is the main split)."""
    main = results[0]
    out: dict = {"seeds": list(seeds), "n_splits": len(results), "targets": {},
                 "galleries_sha256": [gallery_sha256(r.split.get("gallery", [])) for r in results]}  # fmt: skip
    for i, t in enumerate(main.targets):
        if t.threshold is None:
            continue
        per_split = [
            r.targets[i] for r in results if i < len(r.targets) and r.targets[i].threshold is not None
        ]
        block: dict = {"by_group": {}}
        for g in t.rates:
            block["by_group"][g] = {
                k: _summary(
                    [
                        getattr(s.rates[g], k).value
                        for s in per_split
                        if g in s.rates and getattr(s.rates[g], k).value is not None
                    ]
                )  # fmt: skip
                for k in KEYS
            }
        for key in RATIO_KEYS:
            vals = {g: getattr(r, key).value for g, r in t.rates.items() if getattr(r, key).value is not None}
            if len(vals) < 2:
                continue
            hi, lo = max(vals, key=vals.get), min(vals, key=vals.get)
            ratios, held, compared = [], 0, 0
            for s in per_split:
                a, b = getattr(s.rates[hi], key).value, getattr(s.rates[lo], key).value
                if a is None or b is None:
                    continue
                compared += 1
                held += a > b
                if b > 0:
                    ratios.append(a / b)
            block[f"{key}_ratio"] = {
                "pair": [hi, lo],
                "n_splits": compared,
                "direction_holds": held,
                "undefined": compared - len(ratios),
                **{k: v for k, v in _summary(ratios).items() if k != "n"},
            }
        out["targets"][str(t.target_fpir)] = block
    return out
