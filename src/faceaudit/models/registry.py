"""The one registry of backends: each name maps to a factory and a description.

A new backend is one :class:`ModelEntry` added to :data:`REGISTRY` (see docs/architecture.md): ``load_backend``,
``describe_models``, the CLI's ``--model`` help and ``faceaudit models`` all read it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from faceaudit.errors import PolicyError, UsageError
from faceaudit.models.base import Detector, Embedder

DEFAULT_MODEL = "sface"


@dataclass(frozen=True, slots=True)
class Backend:
    """A detector and an embedder that belong together."""

    name: str
    detector: Detector
    embedder: Embedder

    @property
    def model_id(self) -> str:
        return self.embedder.model_id


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One registered backend.

    ``name`` is what users type (a name ending in ``:PATH`` takes an argument after its prefix, as
    ``onnx:PATH``); ``build(argument, threads, options)`` makes the :class:`Backend`; ``describe()`` gives the
    row of ``faceaudit models``; ``options`` are the keywords it accepts besides ``threads`` (any other is a
    ``TypeError``); ``licence_gate`` is the word a user must give (``accept_license=`` or
    ``FACEAUDIT_ACCEPT_LICENSE``) before the model loads, for weights under a restrictive licence.
    """

    name: str
    build: Callable[[str, int | None, dict[str, Any]], Backend]
    describe: Callable[[], dict[str, Any]]
    options: tuple[str, ...] = ()
    licence_gate: str | None = None

    @property
    def prefix(self) -> str | None:
        """``"onnx:"`` for ``onnx:PATH``; None for a plain name."""
        return self.name[: -len("PATH")] if self.name.endswith(":PATH") else None


# --- factories ---------------------------------------------------------------------------------------------


def _build_sface(_: str, threads: int | None, options: dict[str, Any]) -> Backend:
    from faceaudit.models.onnx_embedder import sface_embedder
    from faceaudit.models.yunet import YuNetDetector

    return Backend("sface", YuNetDetector(threads=threads), sface_embedder(threads=threads, **options))


def _build_dlib(kind: str) -> Callable[[str, int | None, dict[str, Any]], Backend]:
    name = "dlib-cnn" if kind == "cnn" else "dlib"

    def build(_: str, threads: int | None, options: dict[str, Any]) -> Backend:
        from faceaudit.models.dlib_backend import DlibDetector, DlibEmbedder

        return Backend(name, DlibDetector(kind, **options), DlibEmbedder())

    return build


def _build_onnx(path: str, threads: int | None, options: dict[str, Any]) -> Backend:
    from faceaudit.models.onnx_embedder import OnnxEmbedder
    from faceaudit.models.yunet import YuNetDetector

    if not path:
        raise UsageError("--model onnx:PATH needs a path to an .onnx file")
    return Backend(
        f"onnx:{path}", YuNetDetector(threads=threads), OnnxEmbedder(path, threads=threads, **options)
    )


def _build_arcface_mbf(_: str, threads: int | None, options: dict[str, Any]) -> Backend:
    from faceaudit.models.files import W600K_MBF, verified_path
    from faceaudit.models.onnx_embedder import ARCFACE_MBF_RUNTIME, ARCFACE_MBF_THRESHOLD, OnnxEmbedder
    from faceaudit.models.yunet import YuNetDetector

    path = verified_path(W600K_MBF)
    embedder = OnnxEmbedder(
        path,
        model_id="arcface-mbf-w600k",
        mean=127.5,
        std=127.5,
        channels="rgb",
        input_size=(112, 112),
        default_threshold=ARCFACE_MBF_THRESHOLD,
        threads=threads,
        runtime=options.get("runtime") or ARCFACE_MBF_RUNTIME,
        precision=options.get("precision"),
    )
    return Backend("arcface-mbf", YuNetDetector(threads=threads), embedder)


# --- descriptions ------------------------------------------------------------------------------------------


def _files(*model_files) -> list[dict[str, Any]]:
    from faceaudit.models.files import sha256_of

    out = []
    for mf in model_files:
        try:
            path = mf.path()
            digest = sha256_of(path) if path.is_file() else "missing"
        except Exception as exc:  # the carrying package is not installed
            path, digest = "", f"unavailable ({exc})"
        out.append(
            {
                "file": str(path),
                "sha256": digest,
                "verified": mf.sha256 is None or mf.sha256 == digest,
                "licence": mf.licence,
                "source": mf.source,
            }
        )
    return out


def _sface_runtime_here() -> str:
    """What the sface backend runs on this machine, with the current environment (nothing is loaded)."""
    from faceaudit.models.forward import default_runtime, resolve_precision

    det = default_runtime("FACEAUDIT_YUNET_RUNTIME")
    emb = default_runtime("FACEAUDIT_SFACE_RUNTIME")
    det = "openvino-f32" if det == "openvino" else det
    emb = f"openvino-{resolve_precision()}" if emb == "openvino" else emb
    return f"detector={det} embedder={emb}"


def _describe_sface() -> dict[str, Any]:
    from faceaudit.models.files import SFACE, YUNET
    from faceaudit.models.onnx_embedder import SFACE_THRESHOLD

    return {
        "name": "sface",
        "model_id": "sface-2021dec-int8bq",
        "detector": "yunet-2023mar-int8bq",
        "dim": 128,
        "metric": "cosine",
        "default_threshold": SFACE_THRESHOLD,
        "runtime": "OpenVINO: SFace in bf16 where the CPU has it (else f32), YuNet in f32 "
        "(FACEAUDIT_SFACE_RUNTIME / FACEAUDIT_YUNET_RUNTIME=opencv, FACEAUDIT_PRECISION=f32 to change)",
        "runtime_here": _sface_runtime_here(),
        "files": _files(YUNET, SFACE),
    }


def _describe_dlib(kind: str) -> Callable[[], dict[str, Any]]:
    def describe() -> dict[str, Any]:
        from faceaudit.models.dlib_backend import DLIB_THRESHOLD
        from faceaudit.models.files import DLIB_MMOD, DLIB_RESNET, DLIB_SHAPE5

        files = (DLIB_MMOD, DLIB_SHAPE5, DLIB_RESNET) if kind == "cnn" else (DLIB_SHAPE5, DLIB_RESNET)
        return {
            "name": "dlib-cnn" if kind == "cnn" else "dlib",
            "model_id": "dlib-resnet-v1",
            "detector": f"dlib-{kind}",
            "dim": 128,
            "metric": "cosine",
            "default_threshold": DLIB_THRESHOLD,
            "runtime": "dlib",
            "files": _files(*files),
        }

    return describe


def _describe_arcface_mbf() -> dict[str, Any]:
    from faceaudit.models.files import RESEARCH_LICENCE, W600K_MBF, YUNET
    from faceaudit.models.onnx_embedder import ARCFACE_MBF_RUNTIME, ARCFACE_MBF_THRESHOLD

    return {
        "name": "arcface-mbf",
        "model_id": "arcface-mbf-w600k",
        "detector": "yunet-2023mar-int8bq",
        "dim": 512,
        "metric": "cosine",
        "default_threshold": ARCFACE_MBF_THRESHOLD,
        "runtime": f"{ARCFACE_MBF_RUNTIME} (runtime=openvino / onnxruntime / opencv to change)",
        "licence": f"{RESEARCH_LICENCE}; refused unless --accept-model-license research "
        "(or FACEAUDIT_ACCEPT_LICENSE=research)",
        "optional": True,
        "files": _files(YUNET, W600K_MBF),
    }


def _describe_onnx() -> dict[str, Any]:
    return {
        "name": "onnx:PATH",
        "model_id": "onnx:<file>:<sha256[:12]>",
        "detector": "yunet-2023mar-int8bq",
        "dim": "from the model",
        "metric": "cosine",
        "default_threshold": "0.3 unless --threshold",
        "runtime": "onnxruntime (or --onnx-runtime openvino / opencv)",
        "files": [],
    }


REGISTRY: Mapping[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry("sface", _build_sface, _describe_sface, ("runtime", "precision")),
        ModelEntry("dlib", _build_dlib("hog"), _describe_dlib("hog"), ("upsample",)),
        ModelEntry("dlib-cnn", _build_dlib("cnn"), _describe_dlib("cnn"), ("upsample",)),
        ModelEntry(
            "arcface-mbf",
            _build_arcface_mbf,
            _describe_arcface_mbf,
            ("runtime", "precision", "accept_license"),
            licence_gate="research",
        ),
        ModelEntry(
            "onnx:PATH",
            _build_onnx,
            _describe_onnx,
            ("mean", "std", "channels", "input_size", "default_threshold", "runtime", "precision"),
        ),
    )
}
"""Every backend name users may give, in the order ``faceaudit models`` lists them."""

BACKEND_NAMES = tuple(REGISTRY)


def resolve(spec: str) -> tuple[ModelEntry, str]:
    """The registry entry for ``spec`` and its argument (the path of ``onnx:PATH``; '' for a plain name)."""
    if spec in REGISTRY and REGISTRY[spec].prefix is None:
        return REGISTRY[spec], ""
    for entry in REGISTRY.values():
        if entry.prefix and spec.startswith(entry.prefix):
            return entry, spec[len(entry.prefix) :]
    raise UsageError(f"unknown model {spec!r}; choose one of: {', '.join(BACKEND_NAMES)}")


def backend_options(spec: str) -> tuple[str, ...]:
    """The keyword options the backend ``spec`` accepts (``threads`` and its own)."""
    entry, _ = resolve(spec)
    return ("threads", *entry.options)


def check_options(spec: str, options: dict[str, Any]) -> ModelEntry:
    """The entry for ``spec`` after refusing unknown options (``TypeError``) and an unaccepted licence."""
    entry, _ = resolve(spec)
    valid = backend_options(spec)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"model {spec!r} has no option {unknown[0]!r}; valid options: {', '.join(valid)}")
    if entry.licence_gate:
        given = options.get("accept_license") or os.environ.get(LICENCE_ENV, "")
        if given != entry.licence_gate:
            raise PolicyError(
                f"model {spec!r} is refused: its weights are licensed for non-commercial {entry.licence_gate} "
                f"use only (`faceaudit models` shows the licence). If your use is {entry.licence_gate}, say so "
                f"with --accept-model-license {entry.licence_gate} (Python: accept_license="
                f"{entry.licence_gate!r}) or {LICENCE_ENV}={entry.licence_gate}"
            )
    return entry


LICENCE_ENV = "FACEAUDIT_ACCEPT_LICENSE"

_CACHE: dict[tuple, Backend] = {}


def load_backend(spec: str = DEFAULT_MODEL, **options: Any) -> Backend:
    """Build (and cache) the backend called ``spec``.

    ``options`` for ``onnx:PATH``: ``mean``, ``std``, ``channels`` ("rgb"/"bgr", the model's input order),
    ``input_size`` (w, h), ``default_threshold``, ``runtime``, ``precision``; for ``sface`` and
    ``arcface-mbf``: ``runtime``, ``precision`` (and ``accept_license="research"`` for ``arcface-mbf``); for
    the dlib backends: ``upsample`` (times the image is doubled before detection, default 1). ``threads`` caps
    each runtime's threads (OpenVINO, onnxruntime intra-op, or OpenCV; dlib runs on one). An unknown option is
    a ``TypeError`` naming it and the valid ones.
    """
    # per process: OpenVINO's compiled models and thread pools do not survive fork(), so a forked worker
    # (multiprocessing's default on Linux) builds its own backend instead of inheriting its parent's
    entry = check_options(spec, options)
    key = (
        os.getpid(),
        spec,
        tuple(sorted((k, repr(v)) for k, v in options.items() if k != "accept_license")),
    )
    if key in _CACHE:
        return _CACHE[key]
    _, argument = resolve(spec)
    options = dict(options)
    options.pop("accept_license", None)
    threads = options.pop("threads", None)
    backend = entry.build(argument, threads, options)
    _CACHE[key] = backend
    return backend


def describe_models() -> list[dict[str, Any]]:
    """One row per registered backend: files, SHA-256, licence, template dimension and default threshold."""
    return [entry.describe() for entry in REGISTRY.values()]
