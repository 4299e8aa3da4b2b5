"""Face-quality measures and the quality gate used at enrolment and search."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceaudit.types import Face, Quality


def measure_quality(face: Face, aligned: np.ndarray) -> Quality:
    """Inter-eye distance (px), Laplacian-variance sharpness of the aligned crop, detector score, yaw proxy."""
    lm = np.asarray(face.landmarks, dtype=np.float64)
    eye_r, eye_l, nose = lm[0], lm[1], lm[2]
    inter_eye = float(np.hypot(*(eye_l - eye_r)))
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY) if aligned.ndim == 3 else aligned
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    if inter_eye > 0:
        eye_mid = (eye_r + eye_l) / 2.0
        axis = (eye_l - eye_r) / inter_eye
        yaw = float(np.clip(np.dot(nose - eye_mid, axis) / (inter_eye / 2.0), -1.0, 1.0))
    else:
        yaw = 0.0
    return Quality(inter_eye_px=inter_eye, sharpness=sharpness, detector_score=float(face.score), yaw=yaw)


@dataclass(frozen=True, slots=True)
class QualityGate:
    """Minimum quality for enrolment and search. ``check`` returns the reasons a face fails (empty = pass)."""

    min_inter_eye_px: float = 20.0
    min_sharpness: float = 15.0
    min_detector_score: float = 0.7
    max_abs_yaw: float = 0.75

    def check(self, q: Quality) -> list[str]:
        reasons = []
        if q.inter_eye_px < self.min_inter_eye_px:
            reasons.append(
                f"face too small: inter-eye distance {q.inter_eye_px:.1f}px < {self.min_inter_eye_px:g}px"
            )
        if q.sharpness < self.min_sharpness:
            reasons.append(f"image too blurred: sharpness {q.sharpness:.1f} < {self.min_sharpness:g}")
        if q.detector_score < self.min_detector_score:
            reasons.append(f"detector confidence {q.detector_score:.2f} < {self.min_detector_score:g}")
        if abs(q.yaw) > self.max_abs_yaw:
            reasons.append(f"head turned too far: yaw proxy {q.yaw:+.2f} beyond ±{self.max_abs_yaw:g}")
        return reasons
