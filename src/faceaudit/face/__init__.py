"""The face layer: geometry and quality of one detected face, below both the models and the pipeline.

It knows faces (:class:`~faceaudit.types.Face`, :class:`~faceaudit.types.Quality`) and pixels, and nothing of
backends, engines, galleries or ledgers: :mod:`faceaudit.face.align` warps a face onto the ArcFace template,
:mod:`faceaudit.face.quality` measures a face and gates it.
"""

from faceaudit.face.align import ARCFACE_112, align_face, similarity_transform
from faceaudit.face.quality import QualityGate, measure_quality

__all__ = ["ARCFACE_112", "align_face", "similarity_transform", "QualityGate", "measure_quality"]
