"""MPO files decode their primary image; corrupt JPEG data is refused the same way at every entry point."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceaudit.errors import InputError
from faceaudit.imaging import load_image, read_image

FACE = Path(__file__).parent / "data" / "fairface" / "fairface_0001.jpg"


def mpo_bytes() -> bytes:
    img = Image.open(FACE).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="MPO", save_all=True, append_images=[img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    return buf.getvalue()


def corrupt_jpeg() -> bytes:
    """A JPEG with an intact end marker whose compressed data was overwritten in the middle."""
    data = bytearray(FACE.read_bytes())
    sos = data.find(b"\xff\xda")
    mid = sos + (len(data) - sos) // 2
    for i in range(mid, mid + 200):
        if data[i] != 0xFF and data[i - 1] != 0xFF:
            data[i] = (data[i] * 7 + 13) & 0xFE
    return bytes(data)


def test_an_mpo_decodes_its_primary_image():
    data = mpo_bytes()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    out = load_image(data).astype(int)
    original = load_image(FACE).astype(int)  # re-encoded once: close, not equal
    assert (
        np.abs(out - original).mean() < 3 < np.abs(out - original[:, ::-1]).mean()
    )  # not the flipped second image


def test_corrupt_jpeg_data_is_refused(tmp_path):
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(corrupt_jpeg())
    for call in (lambda: load_image(path), lambda: read_image(path), lambda: load_image(path.read_bytes())):
        with pytest.raises(InputError, match="corrupt JPEG data"):
            call()
    with pytest.raises(InputError) as err:
        read_image(path)
    assert err.value.path == str(path)
