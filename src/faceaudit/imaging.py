"""Decode and validate input images. This is the only module that decodes image bytes.

Formats are detected by content (Pillow's signature sniffing), never by file extension. EXIF orientation is
applied; greyscale, palette, alpha and 16-bit images become 8-bit BGR; images above a pixel limit are refused
before their pixels are decoded (decompression bombs).

Pillow reads every header and decodes every format. A complete JPEG in RGB or greyscale (the common
case) is decoded by libjpeg-turbo through simplejpeg instead: the same pixels as Pillow and OpenCV (libjpeg-turbo
in all three), EXIF orientation applied the same way, in a fraction of the time, and *strictly*.

Corrupt JPEG data: a JPEG whose end marker is intact but whose compressed data is corrupt is **refused**
(InputError "corrupt JPEG data", exit 3), at every entry point, because libjpeg would only warn on stderr and draw
grey or garbled blocks, and a template of such an image is not a template of the face. A JPEG with bytes after
its end marker (camera data) is accepted. MPO files (a JPEG with more images appended, e.g. gain maps) are JPEGs:
their primary image is decoded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from faceaudit.errors import InputError

ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "PPM", "TIFF"})
"""Pillow format names we accept. PPM covers PGM and PPM (Netpbm); MPO is a JPEG (its primary image)."""

MAX_PIXELS = 40_000_000
"""Default limit on width × height; larger images are refused (override with ``max_pixels``)."""

ImageSource = str | os.PathLike | bytes | np.ndarray


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """An image decoded once: BGR uint8 pixels, the path (or label) it came from for error messages, and the
    SHA-256 of its encoded bytes (of the array's bytes for an array). ``encoded`` is kept only when asked."""

    pixels: np.ndarray = field(repr=False)
    source: str
    sha256: str
    encoded: bytes | None = field(default=None, repr=False)


def read_image(
    source: ImageSource | DecodedImage,
    *,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    keep_encoded: bool = False,
) -> DecodedImage:
    """Read ``source`` once: decode it and hash its encoded bytes. A :class:`DecodedImage` passes through.

    Errors are :class:`InputError` naming the file (or ``name``).
    """
    if isinstance(source, DecodedImage):
        return source
    if isinstance(source, np.ndarray):
        label = name or "<array>"
        digest = hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest()
        return DecodedImage(_array_to_bgr(source, label), label, digest)
    data, label = read_source(source, name=name)
    pixels = decode_bytes(data, label, max_pixels=max_pixels)
    return DecodedImage(pixels, label, hashlib.sha256(data).hexdigest(), data if keep_encoded else None)


def load_image(source: ImageSource, *, max_pixels: int = MAX_PIXELS, name: str | None = None) -> np.ndarray:
    """Decode ``source`` (a path, raw bytes, or an already decoded array) to a contiguous BGR uint8 array.

    Raises :class:`InputError` naming the file and the reason for empty, truncated, corrupt, unsupported,
    or oversized input.
    """
    if isinstance(source, np.ndarray):
        return _array_to_bgr(source, name or "<array>")
    data, label = read_source(source, name=name)
    return decode_bytes(data, label, max_pixels=max_pixels)


def read_source(source: str | os.PathLike | bytes, *, name: str | None = None) -> tuple[bytes, str]:
    """The encoded bytes of a path (or bytes) and the label that names it in errors; nothing is decoded."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), name or "<bytes>"
    path = Path(source)
    label = name or str(path)
    try:
        return path.read_bytes(), label
    except FileNotFoundError:
        raise InputError(label, "file not found") from None
    except IsADirectoryError:
        raise InputError(label, "is a directory, not an image file") from None
    except PermissionError:
        raise InputError(label, "permission denied") from None
    except OSError as exc:
        raise InputError(label, f"cannot be read ({exc.strerror or exc})") from None


def decode_bytes(data: bytes, label: str, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to BGR uint8; ``label`` names the source in error messages."""
    if not data:
        raise InputError(label, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))  # exif_transpose below gives a plain Image
    except UnidentifiedImageError:
        raise InputError(
            label, "not a recognised image (supported: JPEG, PNG, WebP, BMP, PGM/PPM, TIFF)"
        ) from None
    except Image.DecompressionBombError:
        raise InputError(label, f"image is too large (limit {max_pixels:,} pixels)") from None
    except Exception as exc:  # Pillow raises many types for corrupt headers
        kind = (
            "truncated image (file ends inside the header)"
            if "truncat" in str(exc).lower()
            else "corrupt image header"
        )
        raise InputError(label, f"{kind} ({exc})") from None
    if img.format not in ALLOWED_FORMATS:
        raise InputError(
            label, f"unsupported image format {img.format!r} (supported: JPEG, PNG, WebP, BMP, PGM/PPM, TIFF)"
        )
    w, h = img.size
    if w <= 0 or h <= 0:
        raise InputError(label, f"image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise InputError(label, f"image is too large: {w}x{h} = {w * h:,} pixels (limit {max_pixels:,})")
    fast = _decode_jpeg_fast(img, data, label)
    if fast is not None:
        return fast
    try:
        img.load()
    except Exception as exc:  # truncated or corrupt pixel data
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = "truncated image data"
        raise InputError(label, f"corrupt or truncated image ({reason})") from None
    with contextlib.suppress(Exception):  # a broken EXIF block must not lose an otherwise readable image
        img = ImageOps.exif_transpose(img)
    return _pil_to_bgr(img, label)


_JPEG_FORMATS = ("JPEG", "MPO")
"""MPO is a JPEG with more images appended (phones write them for gain maps); its primary image is decoded."""

_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}
"""EXIF orientation → the array operation that shows the image upright (as Pillow's ``exif_transpose``)."""


def _decode_jpeg_fast(img: Image.Image, data: bytes, label: str) -> np.ndarray | None:
    """libjpeg-turbo's strict decode (simplejpeg) of a complete RGB or greyscale JPEG, EXIF orientation applied,
    or None to let Pillow decode it.

    Strict: a JPEG whose compressed data is corrupt ("Corrupt JPEG data: ...", which libjpeg would only warn
    about while drawing grey or garbled blocks) is refused with InputError. Files that do not end with the JPEG
    end-of-image marker fall through to Pillow and its precise "truncated" error.
    """
    if img.format not in _JPEG_FORMATS or not _complete_jpeg(img, data):
        return None
    if img.mode not in ("RGB", "L"):
        _check_jpeg_data(data, label)
        return None
    try:
        arr = simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True)
    except ValueError as exc:
        raise InputError(label, f"corrupt JPEG data ({exc})") from None
    if arr.shape[:2] != (img.size[1], img.size[0]):
        return None
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not lose an otherwise readable image
        orientation = 1
    if orientation in _ORIENT:
        arr = _ORIENT[orientation](arr)
    return np.ascontiguousarray(arr)


def _complete_jpeg(img: Image.Image, data: bytes) -> bool:
    return data.rstrip(b"\x00").endswith(b"\xff\xd9") or img.format == "MPO"


def _check_jpeg_data(data: bytes, label: str) -> None:
    """Refuse a complete JPEG (any colour model) whose compressed data libjpeg reports as corrupt."""
    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True)
    except ValueError as exc:
        if "corrupt" in str(exc).lower() or "premature" in str(exc).lower():
            raise InputError(label, f"corrupt JPEG data ({exc})") from None


def _pil_to_bgr(img: Image.Image, label: str) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        grey = ((arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[..., ::-1])


def _array_to_bgr(arr: np.ndarray, label: str) -> np.ndarray:
    if arr.size == 0:
        raise InputError(label, "empty array")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InputError(label, f"array dtype {arr.dtype} is not supported (use uint8 or uint16)")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        arr = (arr[..., :3].astype(np.float32) * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise InputError(label, f"array shape {arr.shape} is not an image (H×W, H×W×3 or H×W×4)")
    return np.ascontiguousarray(arr)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
