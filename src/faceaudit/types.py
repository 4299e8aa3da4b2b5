"""Small frozen value types shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SELECTION_POLICIES = ("central", "largest", "best")
DEFAULT_POLICY = "central"
"""The face nearest the image centre: the most accurate policy on LFW View-2 (see pipeline.select)."""


@dataclass(frozen=True, slots=True)
class Face:
    """A detected face.

    ``box`` is ``(x, y, w, h)`` in pixels; ``landmarks`` is a 5×2 array in the order right eye, left eye,
    nose tip, right mouth corner, left mouth corner (as seen by the subject; image-left eye first).
    ``raw_landmarks`` keeps a backend's own points when they differ (dlib's 5-point shape).
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    raw_landmarks: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return (x + w / 2.0, y + h / 2.0)


@dataclass(frozen=True, slots=True)
class Quality:
    """Image-quality measures of one detected face.

    ``inter_eye_px`` is the distance between eye centres, ``sharpness`` the variance of the Laplacian of the
    aligned crop, ``detector_score`` the detector's confidence, and ``yaw`` a proxy in [-1, 1] for head turn
    from the nose's horizontal offset between the eyes (0 is frontal).
    """

    inter_eye_px: float
    sharpness: float
    detector_score: float
    yaw: float

    def as_dict(self) -> dict[str, float]:
        return {
            "inter_eye_px": round(self.inter_eye_px, 2),
            "sharpness": round(self.sharpness, 2),
            "detector_score": round(self.detector_score, 4),
            "yaw": round(self.yaw, 4),
        }


@dataclass(frozen=True, slots=True)
class Template:
    """An L2-normalised float32 face template, tagged with the id of the model that made it."""

    vector: np.ndarray
    model_id: str
