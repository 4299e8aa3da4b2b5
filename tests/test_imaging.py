"""Decoding and validation of input images (imaging layer)."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from conftest import FAIRFACE, run_cli
from PIL import Image

from faceaudit.errors import InputError
from faceaudit.imaging import load_image

FACE = FAIRFACE / "fairface_0001.jpg"


def _rgb() -> np.ndarray:
    return np.asarray(Image.open(FACE).convert("RGB"))


@pytest.mark.parametrize(
    ("fmt", "mode", "kwargs"),
    [
        ("PNG", "RGB", {}),
        ("WEBP", "RGB", {"lossless": True}),
        ("BMP", "RGB", {}),
        ("PPM", "RGB", {}),
        ("PPM", "L", {}),  # PGM
        ("TIFF", "RGB", {}),
        ("JPEG", "RGB", {"quality": 95}),
    ],
)
def test_formats_are_detected_by_content_not_extension(tmp_path, fmt, mode, kwargs):
    img = Image.fromarray(_rgb()).convert(mode)
    path = tmp_path / "image.jpg.txt"  # misleading extension on purpose
    img.save(path, format=fmt, **kwargs)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (448, 448, 3)
    expected = np.asarray(img.convert("RGB"))[..., ::-1]
    tolerance = 12 if fmt == "JPEG" else 0
    assert np.abs(out.astype(int) - expected.astype(int)).mean() <= tolerance


def test_exif_orientation_is_applied(tmp_path):
    rgb = _rgb()[:, :300]  # 448 high × 300 wide
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    img.save(path, format="JPEG", exif=exif.tobytes())
    out = load_image(path)
    assert out.shape == (300, 448, 3)


def _pillow_decode(data: bytes) -> np.ndarray:
    from PIL import ImageOps

    from faceaudit.imaging import _pil_to_bgr

    return _pil_to_bgr(ImageOps.exif_transpose(Image.open(io.BytesIO(data))), "reference")


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_fast_path_gives_pillows_pixels_for_every_orientation(monkeypatch, mode):
    """Complete RGB/grey JPEGs are decoded by libjpeg-turbo (simplejpeg): same pixels and orientation as Pillow."""
    import simplejpeg

    calls = []
    real = simplejpeg.decode_jpeg
    monkeypatch.setattr(simplejpeg, "decode_jpeg", lambda *a, **k: calls.append(1) or real(*a, **k))
    img = Image.fromarray(_rgb()[:, :300]).convert(mode)
    for orientation in range(1, 9):
        exif = img.getexif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90, exif=exif.tobytes())
        data = buf.getvalue()
        out, expected = load_image(data), _pillow_decode(data)
        assert out.shape == expected.shape and np.array_equal(out, expected), orientation
    assert len(calls) == 8


def test_jpeg_with_bytes_after_its_end_marker_still_decodes():
    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, format="JPEG", quality=90)
    data = buf.getvalue() + b"trailing camera data"
    assert np.array_equal(load_image(data), _pillow_decode(data))


def test_greyscale_alpha_and_16bit_become_8bit_bgr(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (448, 448, 3) and np.array_equal(grey[..., 0], grey[..., 2])

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # transparent corner composites onto white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    alpha = load_image(tmp_path / "alpha.png")
    assert alpha.shape == (448, 448, 3)
    assert (alpha[:10, :10] == 255).all()
    assert np.array_equal(alpha[20:, 20:], rgb[20:, 20:, ::-1])

    sixteen = rgb[..., 0].astype(np.uint16) * 257
    assert cv2.imwrite(str(tmp_path / "deep.png"), sixteen)
    deep = load_image(tmp_path / "deep.png")
    assert deep.dtype == np.uint8 and deep.shape == (448, 448, 3)
    assert np.abs(deep[..., 0].astype(int) - rgb[..., 0].astype(int)).max() <= 1


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (9000, 9000)).save(path, optimize=True)
    assert path.stat().st_size < 200_000
    with pytest.raises(InputError, match="too large") as err:
        load_image(path)
    assert str(path) in str(err.value)
    assert load_image(path, max_pixels=100_000_000).shape == (9000, 9000, 3)


def _bad_inputs(tmp_path):
    good = FACE.read_bytes()
    cases = {
        "empty.jpg": b"",
        "truncated.jpg": good[: len(good) // 3],
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "notes.jpg": b"this is a text file, not an image\n",
        "script.png": b"#!/bin/sh\necho hi\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.jpg").mkdir()
    Image.new("L", (9000, 9000)).save(tmp_path / "bomb.png", optimize=True)  # 81 Mpx, a few kB
    return [*cases, "folder.jpg", "missing.jpg", "bomb.png"]


def test_bad_input_raises_one_error_type_naming_the_file(tmp_path):
    for name in _bad_inputs(tmp_path):
        path = tmp_path / name
        with pytest.raises(InputError) as err:
            load_image(path)
        assert str(path) in str(err.value), name
        assert err.value.reason


def test_bad_input_reasons_are_specific(tmp_path):
    _bad_inputs(tmp_path)
    reasons = {}
    for name in ("empty.jpg", "truncated.jpg", "notes.jpg", "missing.jpg", "folder.jpg"):
        with pytest.raises(InputError) as err:
            load_image(tmp_path / name)
        reasons[name] = err.value.reason
    assert "empty" in reasons["empty.jpg"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "not a recognised image" in reasons["notes.jpg"]
    assert "not found" in reasons["missing.jpg"]
    assert "directory" in reasons["folder.jpg"]


def test_cli_bad_input_exits_3_naming_the_file(tmp_path):
    names = _bad_inputs(tmp_path)
    for name in names:
        path = tmp_path / name
        res = run_cli("detect", str(path), "--json")
        assert res.returncode == 3, (name, res.stderr)
        assert str(path) in res.stderr
        assert "Traceback" not in res.stderr
    res = run_cli("verify", str(FACE), str(tmp_path / "truncated.jpg"), "--json")
    assert res.returncode == 3 and "truncated.jpg" in res.stderr
    if res.stdout:  # with --json, the error as JSON (never a partial result)
        error = json.loads(res.stdout)
        assert (
            error["exit_code"] == 3 and error["path"].endswith("truncated.jpg") and "similarity" not in error
        )


def test_bytes_and_arrays_are_accepted():
    data = FACE.read_bytes()
    from_bytes = load_image(data)
    from_array = load_image(from_bytes)
    assert np.array_equal(from_bytes, from_array)
    grey = load_image(from_bytes[..., 0])
    assert grey.shape == from_bytes.shape
    buf = io.BytesIO()
    Image.fromarray(_rgb()).save(buf, format="PNG")
    assert load_image(buf.getvalue()).shape == (448, 448, 3)
