"""The recognition engine: one object that holds a backend and runs detect → select → align → quality → embed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from faceaudit.errors import NoFaceError
from faceaudit.face.quality import measure_quality
from faceaudit.imaging import ImageSource, load_image
from faceaudit.models import DEFAULT_MODEL, Backend, load_backend
from faceaudit.pipeline.select import DEFAULT_POLICY, select_face, validate_policy
from faceaudit.types import Face, Quality, Template


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """A face found in an image, with its quality."""

    face: Face
    quality: Quality

    def as_dict(self) -> dict[str, Any]:
        """The CLI's JSON shape: box [x, y, w, h], 5 landmarks, score and quality."""
        return {
            "box": [round(float(v), 2) for v in self.face.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.face.landmarks],
            "score": round(float(self.face.score), 4),
            "quality": self.quality.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class FaceTemplate:
    """The template of the face chosen in one image, with how it was chosen."""

    template: Template
    face: Face
    quality: Quality
    n_faces: int
    policy: str

    @property
    def vector(self) -> np.ndarray:
        return self.template.vector


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A 1:1 comparison: cosine similarity, the threshold used, and the decision."""

    similarity: float
    threshold: float
    match: bool
    model: str

    def as_dict(self) -> dict[str, Any]:
        """The CLI's ``verify --json`` object: similarity, threshold, match, model (field order)."""
        return asdict(self)


class Engine:
    """Detect, align, assess and embed faces with one backend.

    ``model`` is a registry name (``"sface"``, ``"dlib"``, ``"dlib-cnn"`` or ``"onnx:PATH"``); ``policy`` chooses
    one face when an image holds several (``"central"``, ``"largest"`` or ``"best"``); ``threshold`` overrides the
    model's calibrated cosine threshold.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        policy: str = DEFAULT_POLICY,
        threshold: float | None = None,
        max_pixels: int | None = None,
        **model_options: Any,
    ) -> None:
        self.policy = validate_policy(policy)
        self.backend: Backend = load_backend(model, **model_options)
        self.threshold = (
            float(threshold) if threshold is not None else float(self.backend.embedder.default_threshold)
        )
        self._max_pixels = max_pixels

    @property
    def model_id(self) -> str:
        return self.backend.embedder.model_id

    @property
    def runtime(self) -> str:
        """Where detection and embedding run, e.g. ``"detector=openvino-f32 embedder=openvino-bf16"``."""
        det = getattr(self.backend.detector, "runtime", "unknown")
        emb = getattr(self.backend.embedder, "runtime", "unknown")
        return f"detector={det} embedder={emb}"

    @property
    def dim(self) -> int:
        return int(self.backend.embedder.dim)

    def load(self, source: ImageSource) -> np.ndarray:
        """Decode an image (path, bytes or array) to BGR uint8."""
        if self._max_pixels is None:
            return load_image(source)
        return load_image(source, max_pixels=self._max_pixels)

    def detect(self, source: ImageSource) -> list[DetectedFace]:
        """Every face in the image, with quality measures."""
        image = self.load(source)
        return [
            DetectedFace(f, measure_quality(f, self.backend.embedder.align(image, f)))
            for f in self._faces(image)
        ]

    def _faces(self, image: np.ndarray) -> list[Face]:
        return self.backend.detector.detect(image)

    def prepare(self, image: np.ndarray, label: str = "<image>") -> tuple[np.ndarray, Face, Quality, int]:
        """Detect and choose one face, then return its aligned crop, the face, its quality and the face count."""
        faces = self._faces(image)
        idx = select_face(faces, image.shape[1], image.shape[0], self.policy)
        if idx is None:
            raise NoFaceError(label, "no face found")
        face = faces[idx]
        crop = self.backend.embedder.align(image, face)
        return crop, face, measure_quality(face, crop), len(faces)

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Templates (N×dim, float32, L2-normalised) for aligned crops, batched."""
        return self.backend.embedder.embed(crops)

    def template(self, source: ImageSource, *, name: str | None = None) -> FaceTemplate:
        """The template of the chosen face in one image. Raises NoFaceError when there is none."""
        label = name or (str(source) if not isinstance(source, bytes | np.ndarray) else "<image>")
        image = self.load(source)
        crop, face, quality, n = self.prepare(image, label)
        vec = self.embed_crops([crop])[0]
        return FaceTemplate(Template(vec, self.model_id), face, quality, n, self.policy)

    def compare(self, a: np.ndarray, b: np.ndarray) -> float:
        """Cosine similarity of two templates."""
        return float(np.dot(np.asarray(a, np.float32), np.asarray(b, np.float32)))

    def verify(self, a: ImageSource, b: ImageSource, *, threshold: float | None = None) -> VerifyResult:
        """1:1 verification of two images: similarity, threshold and decision."""
        ta, tb = self.template(a), self.template(b)
        sim = round(self.compare(ta.vector, tb.vector), 6)
        thr = self.threshold if threshold is None else float(threshold)
        return VerifyResult(similarity=sim, threshold=thr, match=bool(sim >= thr), model=self.model_id)
