"""dlib baseline: HOG (or MMOD CNN) detector, 5-point shape predictor and the 128-d ResNet descriptor.

The weights come from the ``face_recognition_models`` wheel; this is the same model family that the
``face_recognition`` library uses, so users can compare and audit both.
"""

from __future__ import annotations

import threading

import numpy as np

from faceaudit.errors import UsageError
from faceaudit.models.base import l2_normalise
from faceaudit.models.files import DLIB_MMOD, DLIB_RESNET, DLIB_SHAPE5, DLIB_SHAPE68, verified_path
from faceaudit.types import Face

DLIB_THRESHOLD = 0.9262
"""Cosine threshold for the dlib ResNet: FMR 1e-3 over all 48.2 M non-mated LFW pairs (docs/calibration.md)."""


def _dlib():
    import dlib  # imported lazily: loading dlib costs ~0.2 s

    return dlib


_SHARED: dict[str, object] = {}
_SHARED_LOCK = threading.Lock()


def _shared(name: str, factory):
    with _SHARED_LOCK:
        if name not in _SHARED:
            _SHARED[name] = factory()
        return _SHARED[name]


def _shape_predictor():
    return _shared("shape5", lambda: _dlib().shape_predictor(str(verified_path(DLIB_SHAPE5))))


def _shape_predictor_68():
    return _shared("shape68", lambda: _dlib().shape_predictor(str(verified_path(DLIB_SHAPE68))))


LANDMARKS_68 = {
    "chin": list(range(0, 17)),
    "left_eyebrow": list(range(17, 22)),
    "right_eyebrow": list(range(22, 27)),
    "nose_bridge": list(range(27, 31)),
    "nose_tip": list(range(31, 36)),
    "left_eye": list(range(36, 42)),
    "right_eye": list(range(42, 48)),
    "top_lip": [*range(48, 55), 64, 63, 62, 61, 60],
    "bottom_lip": [*range(54, 60), 48, 60, 67, 66, 65, 64],
}
"""face_recognition's grouping of dlib's 68 points (iBUG 300-W order); "left" is the image's left."""


class DlibDetector:
    """dlib face detector ("hog" or "cnn") plus the 5-point shape predictor.

    ``score`` is the detector's own number, not a probability: for "hog" the SVM's margin (faces are reported
    from 0 up; frontal faces typically score 0.5 to 3), for "cnn" the MMOD detection confidence (typically 0
    to 1.5 for faces). ``upsample`` doubles the image that many times before detection (finds smaller faces,
    costs ~4× per step).

    ``landmarks`` are converted to the common 5-point order (eye centres, nose, mouth corners estimated from
    the eye–nose geometry, since dlib's 5-point model has no mouth); dlib's own points stay in ``raw_landmarks``
    for dlib's alignment.
    """

    def __init__(self, kind: str = "hog", upsample: int = 1) -> None:
        if kind not in ("hog", "cnn"):
            raise UsageError(f"dlib detector kind must be 'hog' or 'cnn', not {kind!r}")
        if isinstance(upsample, bool) or not isinstance(upsample, int) or not 0 <= upsample <= 4:
            raise UsageError(f"upsample must be an integer from 0 to 4, not {upsample!r}")
        dlib = _dlib()
        self.kind, self.upsample = kind, upsample
        self.name = f"dlib-{kind}"
        self.runtime = "dlib"
        if kind == "hog":
            self._det = dlib.get_frontal_face_detector()
        else:
            self._det = dlib.cnn_face_detection_model_v1(str(verified_path(DLIB_MMOD)))
        self._sp = _shape_predictor()

    def landmarks_68(self, image: np.ndarray, face: Face) -> dict[str, list[tuple[int, int]]]:
        """face_recognition's 68-point dict (``chin``, ``left_eyebrow`` ... ``bottom_lip``) for one face."""
        dlib = _dlib()
        rgb = np.ascontiguousarray(image[..., ::-1])
        x, y, w, h = (int(round(v)) for v in face.box)
        shape = _shape_predictor_68()(rgb, dlib.rectangle(x, y, x + w - 1, y + h - 1))
        points = [(int(p.x), int(p.y)) for p in shape.parts()]
        return {name: [points[i] for i in idx] for name, idx in LANDMARKS_68.items()}

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = np.ascontiguousarray(image[..., ::-1])
        if self.kind == "hog":
            rects, scores, _ = self._det.run(rgb, self.upsample, 0.0)
            found = list(zip(rects, scores, strict=True))
        else:
            found = [(d.rect, d.confidence) for d in self._det(rgb, self.upsample)]
        faces = []
        for rect, score in found:
            shape = self._sp(rgb, rect)
            raw = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            x, y = rect.left(), rect.top()
            faces.append(
                Face(
                    box=(float(x), float(y), float(rect.width()), float(rect.height())),
                    landmarks=_five_from_dlib(raw),
                    score=float(score),
                    raw_landmarks=raw,
                )
            )
        return faces


def _five_from_dlib(raw: np.ndarray) -> np.ndarray:
    """Map dlib's 5 points (2 corners per eye, nose base) to eye centres, nose, and estimated mouth corners."""
    eye_img_left = (raw[2] + raw[3]) / 2.0  # subject's right eye, on the image's left
    eye_img_right = (raw[0] + raw[1]) / 2.0
    nose = raw[4]
    eye_mid = (eye_img_left + eye_img_right) / 2.0
    down = nose - eye_mid
    across = (eye_img_right - eye_img_left) * 0.4
    mouth_mid = nose + down * 0.6
    return np.array(
        [eye_img_left, eye_img_right, nose, mouth_mid - across, mouth_mid + across], dtype=np.float32
    )


class DlibEmbedder:
    """dlib ResNet face descriptor on dlib's own 150×150 aligned chip; templates are L2-normalised."""

    model_id = "dlib-resnet-v1"
    runtime = "dlib"
    dim = 128
    default_threshold = DLIB_THRESHOLD
    input_size = (150, 150)

    def __init__(self) -> None:
        dlib = _dlib()
        self._net = _shared("resnet", lambda: dlib.face_recognition_model_v1(str(verified_path(DLIB_RESNET))))
        self._sp = _shape_predictor()
        self.path = verified_path(DLIB_RESNET)

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        dlib = _dlib()
        rgb = np.ascontiguousarray(image[..., ::-1])
        x, y, w, h = (int(round(v)) for v in face.box)
        rect = dlib.rectangle(x, y, x + w, y + h)
        if face.raw_landmarks is not None and len(face.raw_landmarks) == 5:
            shape = dlib.full_object_detection(
                rect, [dlib.point(int(px), int(py)) for px, py in face.raw_landmarks]
            )
        else:
            shape = self._sp(rgb, rect)
        chip = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
        return np.ascontiguousarray(np.asarray(chip)[..., ::-1])

    def embed(self, aligned: list[np.ndarray]) -> np.ndarray:
        if not aligned:
            return np.zeros((0, self.dim), np.float32)
        chips = [np.ascontiguousarray(c[..., ::-1]) for c in aligned]
        vecs = self._net.compute_face_descriptor(chips)
        return l2_normalise(np.array([np.array(v) for v in vecs], dtype=np.float32))
