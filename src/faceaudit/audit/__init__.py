"""Demographic differential audit: per-group FMR and FNMR at one global threshold, FDR, GARBE, IR, intervals.

The modules, inside out: :mod:`~faceaudit.audit.grid` and :mod:`~faceaudit.audit.counts` (score bins and
what a comparison run accumulates), :mod:`~faceaudit.audit.scores` (the streaming comparator),
:mod:`~faceaudit.audit.metrics`, :mod:`~faceaudit.audit.intervals` and :mod:`~faceaudit.audit.fairness`
(pure rate functions), :mod:`~faceaudit.audit.analysis` (typed results per target,
:mod:`~faceaudit.audit.disaggregated`), :mod:`~faceaudit.audit.result` with :mod:`~faceaudit.audit.report`
and :mod:`~faceaudit.audit.headline` (tables, files, words), and :mod:`~faceaudit.audit.run` (the entry
points re-exported here).

``faceaudit.run_audit(manifest, root, group_by="sex")`` is the top-level function (defined in ``faceaudit``);
this subpackage stays importable as ``faceaudit.audit`` for ``from faceaudit.audit.metrics import ...``.
Importing it is cheap: the names below load their modules on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "audit": "faceaudit.audit.run",
    "audit_scores": "faceaudit.audit.given_scores",
    "audit_templates": "faceaudit.audit.run",
    "AuditResult": "faceaudit.audit.result",
    "SCHEMA": "faceaudit.audit.result",
    "DEFAULT_TARGETS": "faceaudit.audit.analysis",
    "GroupRates": "faceaudit.audit.disaggregated",
    "TargetResult": "faceaudit.audit.disaggregated",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'faceaudit.audit' has no attribute {name!r}")
