"""The forward pass of an ONNX graph, in one of three runtimes: OpenVINO, onnxruntime or OpenCV's DNN engine.

Each takes an N×C×H×W (or N×H×W×C) float32 blob and returns the first output as an N×d float32 array. The
runtime is chosen by measurement (docs/benchmarks.md, "Runtime choice"): for the bundled SFace graph OpenVINO
in bfloat16 is 1.8× faster than OpenCV 5's new DNN engine (fp32), which is 1.8× faster than onnxruntime.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from faceaudit.errors import ModelFormatError, UsageError
from faceaudit.models.onnx_runtime import make_session

RUNTIMES = ("openvino", "onnxruntime", "opencv")
PRECISIONS = ("auto", "f32", "bf16")


@dataclass(slots=True)
class InputSpec:
    """What the graph says about its image input (None where the graph leaves it open)."""

    shape: list = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    output_dim: int | None = None


class OrtForward:
    """onnxruntime, with int8 weight dequantisation folded once (``session.disable_quant_qdq``)."""

    def __init__(self, path: str, *, threads: int | None = None, fold_qdq: bool = True) -> None:
        try:
            self._session = make_session(path, threads=threads, fold_qdq=fold_qdq)
        except Exception as exc:
            raise ModelFormatError(path, f"onnxruntime cannot load this model ({exc})") from None
        inp = self._session.get_inputs()[0]
        out = self._session.get_outputs()[0]
        self._name = inp.name
        dim = out.shape[-1] if out.shape and isinstance(out.shape[-1], int) else None
        self.spec = InputSpec(list(inp.shape), dict(self._session.get_modelmeta().custom_metadata_map), dim)

    def __call__(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run(None, {self._name: blob})[0], np.float32).reshape(len(blob), -1)


class CvForward:
    """OpenCV's new DNN graph engine (OpenCV ≥ 5). A ``cv2.dnn.Net`` is not thread-safe, so calls are serialised."""

    def __init__(self, path: str, *, threads: int | None = None) -> None:
        import cv2

        threads = thread_count(threads)
        if threads:
            cv2.setNumThreads(int(threads))
        try:
            self._net = cv2.dnn.readNetFromONNX(path, cv2.dnn.ENGINE_NEW)
        except cv2.error as exc:
            raise ModelFormatError(path, f"OpenCV cannot load this model ({str(exc).strip()})") from None
        self._lock = threading.Lock()
        self.spec = InputSpec()

    def __call__(self, blob: np.ndarray) -> np.ndarray:
        with self._lock:
            self._net.setInput(blob)
            out = self._net.forward()
        return np.asarray(out, np.float32).reshape(len(blob), -1)


def thread_count(threads: int | None) -> int | None:
    """``threads``, else ``FACEAUDIT_THREADS`` when set, else None (the runtime's own default)."""
    if threads is None and os.environ.get("FACEAUDIT_THREADS"):
        return int(os.environ["FACEAUDIT_THREADS"])
    return threads


_OV_CORE: tuple[int, object] | None = None


def openvino_core():
    """The process's one ``openvino.Core``, created on first use (a forked child makes its own)."""
    global _OV_CORE
    if _OV_CORE is None or _OV_CORE[0] != os.getpid():
        import openvino as ov

        core = ov.Core()
        _keep_compiled_models(core)
        _OV_CORE = (os.getpid(), core)
    return _OV_CORE[1]


def _keep_compiled_models(core) -> None:
    """Let OpenVINO keep the compiled models in the folder of derived model files (``cache_dir()/openvino``,
    trusted as the derived ONNX copies beside it are), so that a new process (the CLI) loads them instead of
    compiling again: about 0.35 s of the engine's start (docs/benchmarks.md). Without a writable folder it
    compiles as before."""
    from faceaudit.models.files import cache_dir

    with contextlib.suppress(UsageError, RuntimeError, OSError):
        core.set_property({"CACHE_DIR": str(cache_dir() / "openvino")})


def openvino_available() -> bool:
    """True when the ``openvino`` package is installed (it is a dependency; a stripped install falls back)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def default_runtime(env: str) -> str:
    """The runtime named by environment variable ``env``, else OpenVINO, else OpenCV when OpenVINO is missing."""
    return os.environ.get(env) or ("openvino" if openvino_available() else "opencv")


def openvino_started() -> bool:
    """True once this process has created its OpenVINO core (and so its thread pool)."""
    return _OV_CORE is not None and _OV_CORE[0] == os.getpid()


def resolve_precision(precision: str | None = None) -> str:
    """``"bf16"`` or ``"f32"``: what OpenVINO computes in. ``auto`` means bf16 where the CPU has native bfloat16
    instructions (AVX512_BF16 or AMX), else f32. ``FACEAUDIT_PRECISION`` overrides the default."""
    precision = (precision or os.environ.get("FACEAUDIT_PRECISION") or "auto").lower()
    if precision not in PRECISIONS:
        raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    caps = openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "bf16" if "BF16" in caps else "f32"


def openvino_config(precision: str, threads: int | None) -> dict[str, object]:
    """CPU plugin settings: ``precision`` ("f32"/"bf16"), ``threads`` (None: all cores), and no core pinning.

    Pinning is off because OpenVINO pins each process's threads from core 0 up: two single-threaded worker
    processes would then share one core and each run at half speed (measured: 16.6 against 8.2 ms a face).
    """
    config: dict[str, object] = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
    }
    threads = thread_count(threads)
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OvForward:
    """OpenVINO on the CPU, with a free batch dimension. ``precision`` is "auto", "f32" or "bf16".

    In bf16 the weights and activations are rounded to bfloat16 and accumulated in fp32; on SFace the templates
    stay within a mean cosine of 0.99994 of fp32 over LFW (docs/models.md). An infer request is not
    thread-safe, so calls are serialised.
    """

    def __init__(self, path: str, *, threads: int | None = None, precision: str | None = None) -> None:
        core = openvino_core()
        self.precision = resolve_precision(precision)
        try:
            model = core.read_model(path)
            metadata = _ov_metadata(model)
            shape = [d.get_length() if d.is_static else -1 for d in model.inputs[0].get_partial_shape()]
            model.reshape({model.inputs[0]: [-1, *shape[1:]]})
            compiled = core.compile_model(model, "CPU", openvino_config(self.precision, threads))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFormatError(path, f"OpenVINO cannot load this model ({first})") from None
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()
        out = compiled.outputs[0].get_partial_shape()
        dim = out[-1].get_length() if out.rank.is_static and out[-1].is_static else None
        spec_shape = ["N", *(d if d > 0 else None for d in shape[1:])]
        self.spec = InputSpec(spec_shape, metadata, dim)

    def __call__(self, blob: np.ndarray) -> np.ndarray:
        with self._lock:
            out = self._request.infer({0: blob})[0]
            return np.array(out, np.float32).reshape(len(blob), -1)


def _ov_metadata(model) -> dict[str, str]:
    """The ONNX file's metadata properties (mean, std, channels ...), which OpenVINO keeps under "framework"."""
    try:
        return {k: v.astype(str) for k, v in model.get_rt_info()["framework"].items()}
    except Exception:  # no metadata, or another front end's layout: it is optional
        return {}


def make_forward(
    path: str,
    runtime: str,
    *,
    threads: int | None = None,
    fold_qdq: bool = True,
    precision: str | None = None,
):
    """An :class:`OvForward`, :class:`OrtForward` or :class:`CvForward` for ``path``."""
    if runtime == "openvino":
        return OvForward(path, threads=threads, precision=precision)
    if runtime == "onnxruntime":
        return OrtForward(path, threads=threads, fold_qdq=fold_qdq)
    if runtime == "opencv":
        return CvForward(path, threads=threads)
    raise UsageError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
