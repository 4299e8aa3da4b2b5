"""The recognition engine: one object that holds a backend and runs detect → select → align → quality → embed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from faceaudit.errors import NoFaceError, UsageError
from faceaudit.face.quality import measure_quality
from faceaudit.imaging import ImageSource, load_image
from faceaudit.models import DEFAULT_MODEL, Backend, load_backend
from faceaudit.models.registry import backend_options
from faceaudit.pipeline.compare import TemplateLike, check_threshold, similarity_matrix
from faceaudit.pipeline.select import DEFAULT_POLICY, select_face, validate_policy
from faceaudit.types import Face, Quality, Template

CHANNEL_ORDERS = ("bgr", "rgb")
"""Channel orders an image array may declare (``channels=``); arrays are BGR unless they say otherwise, as in
OpenCV. Paths and bytes are decoded by content and need no channel order."""

LANDMARK_SETS = (5, 68)


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """A face found in an image, with its quality.

    ``chosen`` marks the face the engine's policy would use for a template; ``landmarks_68`` is
    face_recognition's 68-point dict (``chin``, ``left_eye`` ...) when asked for with ``landmarks=68``.
    """

    face: Face
    quality: Quality
    chosen: bool = False
    landmarks_68: dict[str, list[tuple[float, float]]] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The CLI's JSON shape: box [x, y, w, h], 5 landmarks, score, quality, chosen (and landmarks_68)."""
        out: dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.face.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.face.landmarks],
            "score": round(float(self.face.score), 4),
            "quality": self.quality.as_dict(),
            "chosen": self.chosen,
        }
        if self.landmarks_68 is not None:
            out["landmarks_68"] = {
                k: [[round(float(x), 2), round(float(y), 2)] for x, y in pts]
                for k, pts in self.landmarks_68.items()
            }
        return out


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

    def describe(self) -> dict[str, Any]:
        """What was compared: the chosen face's box, the number of faces and the policy that chose it."""
        return {
            "box": [round(float(v), 2) for v in self.face.box],
            "n_faces": int(self.n_faces),
            "policy": self.policy,
        }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A 1:1 comparison: cosine similarity, the threshold used, and the decision.

    ``a`` and ``b`` are the two templates compared (chosen face, face count, policy); they are not part of the
    result's equality.
    """

    similarity: float
    threshold: float
    match: bool
    model: str
    a: FaceTemplate | None = field(default=None, compare=False, repr=False)
    b: FaceTemplate | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The CLI's ``verify --json`` object: similarity, threshold, match, model (field order), then
        ``images``: for each image the chosen face's box, the face count and the policy."""
        out: dict[str, Any] = {
            "similarity": self.similarity,
            "threshold": self.threshold,
            "match": self.match,
            "model": self.model,
        }
        if self.a is not None and self.b is not None:
            out["images"] = [self.a.describe(), self.b.describe()]
        return out


ENGINE_OPTIONS = ("policy", "threshold", "max_pixels")


class Engine:
    """Detect, align, assess and embed faces with one backend.

    ``model`` is a registry name (``"sface"``, ``"dlib"``, ``"dlib-cnn"``, ``"arcface-mbf"`` or
    ``"onnx:PATH"``); ``policy`` chooses one face when an image holds several (``"central"``, ``"largest"`` or
    ``"best"``); ``threshold`` overrides the model's calibrated cosine threshold (within [-1, 1]). Other
    keywords are the backend's options (``faceaudit.models.registry``); an unknown one is a ``TypeError`` that
    names it and the valid ones. Image arrays are BGR unless a call says ``channels="rgb"``.
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
        valid = backend_options(model)
        unknown = sorted(set(model_options) - set(valid))
        if unknown:
            raise TypeError(
                f"Engine({model!r}) got an unknown option {unknown[0]!r}; valid options: "
                f"{', '.join(ENGINE_OPTIONS + tuple(valid))}"
            )
        self.policy = validate_policy(policy)
        self.backend: Backend = load_backend(model, **model_options)
        self.threshold = (
            check_threshold(threshold)
            if threshold is not None
            else float(self.backend.embedder.default_threshold)
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

    def load(self, source: ImageSource, *, channels: str = "bgr") -> np.ndarray:
        """Decode an image (path, bytes or array) to BGR uint8. ``channels`` is an array's order ("bgr"/"rgb")."""
        if channels not in CHANNEL_ORDERS:
            raise UsageError(f"channels must be 'bgr' or 'rgb', not {channels!r}")
        if self._max_pixels is None:
            image = load_image(source)
        else:
            image = load_image(source, max_pixels=self._max_pixels)
        if channels == "rgb" and isinstance(source, np.ndarray) and source.ndim == 3 and source.shape[2] >= 3:
            image = np.ascontiguousarray(image[..., ::-1])
        return image

    def detect(self, source: ImageSource, *, channels: str = "bgr", landmarks: int = 5) -> list[DetectedFace]:
        """Every face in the image, with quality measures; ``chosen`` marks the one the policy picks.

        ``landmarks=68`` adds face_recognition's 68-point dict (dlib backends only).
        """
        if landmarks not in LANDMARK_SETS:
            raise UsageError(f"landmarks must be 5 or 68, not {landmarks!r}")
        points_68 = getattr(self.backend.detector, "landmarks_68", None)
        if landmarks == 68 and points_68 is None:
            raise UsageError(
                f"68-point landmarks come from dlib's predictor: use --model dlib or dlib-cnn, not {self.backend.name!r}"
            )
        wanted_68 = points_68 if landmarks == 68 else None
        image = self.load(source, channels=channels)
        faces = self._faces(image)
        chosen = select_face(faces, image.shape[1], image.shape[0], self.policy)
        return [
            DetectedFace(
                f,
                measure_quality(f, self.backend.embedder.align(image, f)),
                chosen=i == chosen,
                landmarks_68=wanted_68(image, f) if wanted_68 is not None else None,
            )
            for i, f in enumerate(faces)
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

    def template(
        self, source: ImageSource, *, name: str | None = None, channels: str = "bgr"
    ) -> FaceTemplate:
        """The template of the chosen face in one image. Raises NoFaceError when there is none."""
        label = name or (str(source) if not isinstance(source, bytes | np.ndarray) else "<image>")
        image = self.load(source, channels=channels)
        crop, face, quality, n = self.prepare(image, label)
        vec = self.embed_crops([crop])[0]
        return FaceTemplate(Template(vec, self.model_id), face, quality, n, self.policy)

    def compare(self, a: TemplateLike, b: TemplateLike) -> float | np.ndarray:
        """Cosine similarity: a float for two single templates, else the n×m matrix (see ``faceaudit.compare``)."""
        matrix = similarity_matrix(a, b)
        if _single(a) and _single(b):
            return float(matrix[0, 0])
        return matrix

    def verify(
        self, a: ImageSource, b: ImageSource, *, threshold: float | None = None, channels: str = "bgr"
    ) -> VerifyResult:
        """1:1 verification of two images: similarity, threshold and decision, and the faces compared."""
        thr = self.threshold if threshold is None else check_threshold(threshold)
        ta, tb = self.template(a, channels=channels), self.template(b, channels=channels)
        sim = round(float(np.dot(ta.vector, tb.vector)), 6)
        return VerifyResult(
            similarity=sim, threshold=thr, match=bool(sim >= thr), model=self.model_id, a=ta, b=tb
        )


def _single(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.ndim == 1
    return isinstance(x, Template | FaceTemplate)
