"""Image arguments on the command line: files, folders (recursively) and ``-`` for a list of paths on stdin."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from faceaudit.errors import InputError, UsageError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".pgm", ".ppm", ".pnm", ".tif", ".tiff"}
)
"""Files a folder contributes. A file named on its own is read whatever its name (content decides)."""


def images_in(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, in sorted order (hidden files and folders skipped)."""
    found = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).parts
        if any(part.startswith(".") for part in rel):
            continue
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(p)
    return found


def expand_images(args: Sequence[str], stdin: TextIO | None = None) -> list[str]:
    """Paths of the images named by ``args``: files as given, folders expanded, ``-`` read from stdin.

    A missing path is an :class:`InputError`; a folder without images is one too, so that a typo is not
    mistaken for an empty result.
    """
    out: list[str] = []
    for arg in args:
        if arg == "-":
            out.extend(_stdin_paths(stdin or sys.stdin))
            continue
        path = Path(arg)
        if path.is_dir():
            images = images_in(path)
            if not images:
                raise InputError(arg, f"folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out.extend(str(p) for p in images)
        elif path.exists():
            out.append(arg)
        else:
            raise InputError(arg, "no such file or folder")
    if not out:
        raise UsageError("no images given")
    return out


def _stdin_paths(lines: Iterable[str]) -> list[str]:
    return [line.strip() for line in lines if line.strip()]


def named_images(known: str) -> list[tuple[str, str]]:
    """``(name, path)`` for every known image: named by its sub-folder when ``known`` holds sub-folders with
    images, else by its file name without the suffix (face_recognition's ``known/`` convention)."""
    path = Path(known)
    if path.is_file():
        return [(path.stem, known)]
    if not path.is_dir():
        raise InputError(known, "no such file or folder")
    images = images_in(path)
    if not images:
        raise InputError(known, "folder holds no image files")
    return [
        (p.relative_to(path).parts[0] if len(p.relative_to(path).parts) > 1 else p.stem, str(p))
        for p in images
    ]
