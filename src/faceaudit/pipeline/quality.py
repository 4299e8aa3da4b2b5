"""Kept for the gallery's import: the quality measures and gate now live in :mod:`faceaudit.face.quality`."""

from faceaudit.face.quality import QualityGate, measure_quality

__all__ = ["QualityGate", "measure_quality"]
