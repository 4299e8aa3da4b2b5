"""ONNX face embedders: the bundled SFace model and a user's own model (e.g. ArcFace, 112×112)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceaudit.errors import InputError, ModelFormatError, UsageError
from faceaudit.face.align import align_face
from faceaudit.models.base import check_threshold, l2_normalise
from faceaudit.models.files import SFACE, sha256_of, verified_path
from faceaudit.models.forward import RUNTIMES, default_runtime, make_forward
from faceaudit.models.onnx_fix import fixed_model_path, folded_model_path
from faceaudit.types import Face

BATCH = 16
"""Largest batch sent to the runtime at once."""


class OnnxEmbedder:
    """Embed aligned crops with an ONNX model whose input is N×3×H×W (or N×H×W×3) and output N×d.

    Pixels are fed as ``(x - mean) / std`` in ``channels`` order ("rgb" or "bgr"). Each of these is taken, in
    order of precedence, from the argument, from the model's metadata properties (``mean``, ``std``,
    ``channels``), or from the ArcFace defaults (127.5, 127.5, "rgb"). Input size comes from the model's input
    shape unless ``input_size`` is given. ``runtime`` is "onnxruntime" (the default for a user's model: it
    reads the input shape and metadata), "openvino" (``precision`` "auto", "f32" or "bf16") or "opencv"
    (OpenCV's DNN engine; ``input_size`` is then required).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        model_id: str | None = None,
        mean: float | None = None,
        std: float | None = None,
        channels: str | None = None,
        input_size: tuple[int, int] | None = None,
        default_threshold: float = 0.3,
        threads: int | None = None,
        fold_qdq: bool = True,
        runtime: str = "onnxruntime",
        precision: str | None = None,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "ONNX model file not found")
        if runtime not in RUNTIMES:
            raise UsageError(f"{path}: runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        if runtime == "opencv" and input_size is None:
            raise UsageError(f"{path}: the opencv runtime needs input_size (W, H)")
        self._forward = make_forward(
            str(path), runtime, threads=threads, fold_qdq=fold_qdq, precision=precision
        )
        self.runtime = runtime + (f"-{self._forward.precision}" if runtime == "openvino" else "")
        meta = self._forward.spec.metadata
        try:
            mean = float(meta.get("mean", 127.5)) if mean is None else mean
            std = float(meta.get("std", 127.5)) if std is None else std
        except ValueError:
            raise ModelFormatError(path, "metadata 'mean'/'std' is not a number") from None
        if channels is None:
            channels = str(meta.get("channels", "rgb")).lower()
            if channels not in ("rgb", "bgr"):
                raise ModelFormatError(path, f"metadata 'channels' must be 'rgb' or 'bgr', not {channels!r}")
        elif channels.lower() not in ("rgb", "bgr"):
            raise UsageError(f"{path}: channels must be 'rgb' or 'bgr', not {channels!r}")
        channels = channels.lower()
        if std == 0:
            raise UsageError(f"{path}: std must not be 0 (pixels are divided by it)")
        shape = self._forward.spec.shape or ["N", 3, None, None]
        if len(shape) != 4:
            raise ModelFormatError(path, f"expected a 4-d image input, the model has shape {shape}")
        self._nhwc = shape[3] == 3 and shape[1] != 3
        hw = (shape[1], shape[2]) if self._nhwc else (shape[2], shape[3])
        if input_size is None:
            if not all(isinstance(v, int) and v > 0 for v in hw):
                raise UsageError(f"{path}: input size is not fixed in the model ({shape}); pass input_size")
            input_size = (int(hw[1]), int(hw[0]))
        self.input_size = input_size
        self._batchable = not isinstance(shape[0], int) or shape[0] != 1
        dim = self._forward.spec.output_dim
        self._mean, self._std, self._channels = float(mean), float(std), channels
        if dim is None:
            dim = int(self.embed([np.zeros((input_size[1], input_size[0], 3), np.uint8)]).shape[1])
        self.dim = int(dim)
        self.default_threshold = check_threshold(default_threshold, "default_threshold")
        self.model_id = model_id or f"onnx:{path.name}:{sha256_of(path)[:12]}"
        self.path = path

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        return align_face(image, face.landmarks, self.input_size)

    def _blob(self, crops: list[np.ndarray]) -> np.ndarray:
        x = np.stack(crops).astype(np.float32)
        if self._channels == "rgb":
            x = x[..., ::-1]
        if self._mean or self._std != 1.0:
            x = (x - self._mean) / self._std
        if not self._nhwc:
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def embed(self, aligned: list[np.ndarray]) -> np.ndarray:
        if not aligned:
            return np.zeros((0, getattr(self, "dim", 0)), np.float32)
        step = BATCH if self._batchable else 1
        outs = []
        for i in range(0, len(aligned), step):
            outs.append(self._forward(self._blob(aligned[i : i + step])))
        return l2_normalise(np.concatenate(outs))


def sface_embedder(
    threads: int | None = None, runtime: str | None = None, precision: str | None = None
) -> OnnxEmbedder:
    """SFace (OpenCV zoo 2021dec, int8 weights) in ``runtime``: "openvino" (default), "opencv" or "onnxruntime".

    Chosen by measurement (one thread, this CPU): OpenVINO bf16 8.3 ms a face, OpenVINO f32 14 ms, OpenCV's new
    engine 15.7 ms, onnxruntime 28 ms (docs/benchmarks.md, "Runtime choice"). Without the ``openvino`` package
    the default falls back to OpenCV.

    OpenVINO runs the graph with its weights folded to float32 (:func:`folded_model_path`), in bfloat16 where the
    CPU supports it (``precision``, default "auto"); the other two run the load-time-fixed graph in fp32.
    ``FACEAUDIT_SFACE_RUNTIME`` and ``FACEAUDIT_PRECISION`` change the defaults.
    """
    src = verified_path(SFACE)
    runtime = runtime or default_runtime("FACEAUDIT_SFACE_RUNTIME")
    graph = folded_model_path(src) if runtime == "openvino" else fixed_model_path(src)
    emb = OnnxEmbedder(
        graph,
        model_id="sface-2021dec-int8bq",
        mean=0.0,
        std=1.0,
        channels="rgb",
        input_size=(112, 112),
        default_threshold=SFACE_THRESHOLD,
        threads=threads,
        runtime=runtime,
        precision=precision,
    )
    emb.path = src
    return emb


SFACE_THRESHOLD = 0.3597
"""Cosine threshold for SFace: FMR 1e-3 over all 48.6 M non-mated LFW pairs with the default runtime (OpenVINO,
bf16): FMR 9.99e-4 there, and 9.86e-4 with fp32 templates, whose own calibration gives 0.3594
(docs/calibration.md)."""

ARCFACE_MBF_THRESHOLD = 0.2290
"""Cosine threshold for arcface-mbf (w600k_mbf, f32 templates): FMR 1e-3 over all 48.6 M non-mated LFW pairs
(FMR 9.97e-4 there, FNMR 0.50 %; docs/calibration.md). OpenVINO f32, onnxruntime and OpenCV give the same
templates (cosine ≥ 0.99999), so it holds for each runtime."""

ARCFACE_MBF_RUNTIME = "openvino"
"""arcface-mbf's runtime, chosen by measurement (docs/benchmarks.md, "arcface-mbf")."""
