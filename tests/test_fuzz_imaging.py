"""Fuzzing the image decoder with atheris: every input ends in a decoded BGR image or an InputError.

``make test`` runs a bounded number of inputs (``FACEAUDIT_FUZZ_RUNS``, default 2,000); ``make fuzz`` runs many
more. The target also runs on its own::

    python tests/test_fuzz_imaging.py -runs=100000 -max_len=8192 CORPUS_DIR

When atheris cannot be imported (no wheel for the platform), the test falls back to a bounded random-mutation
loop over the same seeds with the same check, and says so in its output.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

MAX_PIXELS = 1_000_000
"""The fuzz target's pixel limit: the same refusal path as the default, without decoding 40-megapixel images."""


def check_one(data: bytes) -> None:
    """The property: a decoded, contiguous H×W×3 uint8 image, or InputError; anything else escapes and fails."""
    from faceaudit.errors import InputError
    from faceaudit.imaging import decode_bytes

    try:
        image = decode_bytes(data, "<fuzz>", max_pixels=MAX_PIXELS)
    except InputError:
        return
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8, type(image)
    assert image.ndim == 3 and image.shape[2] == 3 and image.flags.c_contiguous, image.shape


def seeds() -> dict[str, bytes]:
    """Small valid images of every accepted format (and a few near misses) to start mutating from."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    out: dict[str, bytes] = {}
    for name, img, fmt, kw in (
        ("rgb.jpg", rgb, "JPEG", {"quality": 80}),
        ("grey.jpg", rgb.convert("L"), "JPEG", {}),
        ("cmyk.jpg", rgb.convert("CMYK"), "JPEG", {}),
        ("progressive.jpg", rgb, "JPEG", {"progressive": True}),
        ("rgba.png", rgb.convert("RGBA"), "PNG", {}),
        ("palette.png", rgb.convert("P"), "PNG", {}),
        ("i16.png", rgb.convert("I;16"), "PNG", {}),
        ("img.bmp", rgb, "BMP", {}),
        ("img.webp", rgb, "WEBP", {}),
        ("img.tif", rgb, "TIFF", {}),
        ("img.ppm", rgb, "PPM", {}),
        ("img.gif", rgb, "GIF", {}),
    ):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        out[name] = buf.getvalue()
    buf = io.BytesIO()
    rgb.save(buf, format="MPO", save_all=True, append_images=[rgb])
    out["img.mpo"] = buf.getvalue()
    out["empty"] = b""
    out["text"] = b"not an image\n"
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation: flip, overwrite, insert, delete or truncate bytes."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = rng.randrange(256)
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 3 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        else:
            del buf[pos:]
    return bytes(buf)


def test_decoder_fuzz(tmp_path):
    runs = int(os.environ.get("FACEAUDIT_FUZZ_RUNS", "2000"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in seeds().items():
        (corpus / name).write_bytes(data)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: random-mutation fallback over the same seeds")
        rng = random.Random(20261127)
        pool = list(seeds().values())
        for _ in range(runs):
            check_one(mutate(rng.choice(pool), rng))
        return
    r = subprocess.run(
        [
            sys.executable,
            __file__,
            f"-runs={runs}",
            "-max_len=4096",
            "-timeout=30",
            "-rss_limit_mb=3072",
            "-seed=20261127",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=max(900, runs // 20),
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]
            ),
        },
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert r.returncode == 0 and not crashes, f"{crashes}\n{r.stderr[-4000:]}"
    assert "Done" in r.stderr, r.stderr[-2000:]


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["faceaudit", "PIL"]):
        import PIL.Image  # noqa: F401

        import faceaudit.imaging  # noqa: F401

    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
