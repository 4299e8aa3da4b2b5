"""YuNet face detector (OpenCV model zoo, 2023mar int8) through ``cv2.FaceDetectorYN``.

Runtime chosen by measurement (docs/benchmarks.md): on this CPU cv2 runs the detector at its native input
size (1.8–2.9 ms for a 250×250 LFW image), while onnxruntime needs a fixed 640×640 letterboxed input.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from faceaudit.models.files import YUNET, verified_path
from faceaudit.types import Face

# errors only: cv2 5.0 warns about DNN targets on every detector it creates
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

MAX_SIDE = 1280
"""Images whose longer side exceeds this are downscaled for detection; coordinates are mapped back."""


class YuNetDetector:
    """Detect faces with YuNet; returns boxes, 5 landmarks and scores in original image coordinates."""

    name = "yunet-2023mar-int8bq"

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, top_k: int = 5000) -> None:
        self._path = str(verified_path(YUNET))
        self._args = (score_threshold, nms_threshold, top_k)
        self._local = threading.local()

    def _net(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        net = getattr(self._local, "net", None)
        if net is None:
            net = cv2.FaceDetectorYN.create(self._path, "", size, *self._args)
            self._local.net = net
        net.setInputSize(size)
        return net

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        scale = min(1.0, MAX_SIDE / max(h, w))
        work = (
            image
            if scale == 1.0
            else cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        )
        _, rows = self._net((work.shape[1], work.shape[0])).detect(work)
        faces: list[Face] = []
        if rows is None:
            return faces
        for row in rows:
            r = row.astype(np.float64) / scale
            faces.append(
                Face(
                    box=(float(r[0]), float(r[1]), float(r[2]), float(r[3])),
                    landmarks=r[4:14].reshape(5, 2).astype(np.float32),
                    score=float(row[14]),
                )
            )
        return faces
