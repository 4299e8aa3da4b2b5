"""Detect → select → align → quality → embed, and the batch job that runs it over a manifest."""

from faceaudit.face.quality import QualityGate, measure_quality
from faceaudit.pipeline.engine import Engine, FaceTemplate, VerifyResult
from faceaudit.pipeline.select import select_face

__all__ = ["Engine", "FaceTemplate", "VerifyResult", "QualityGate", "measure_quality", "select_face"]
