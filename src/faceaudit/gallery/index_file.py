"""The index file: one model's search index of an SQLite gallery, kept beside it as ``DB.index`` so that a new
process (the CLI) loads it instead of opening every sealed template again.

A file is used only for the gallery, model and index kind in its header, at a gallery version no newer than the
gallery's, and under the salt the gallery holds now (see docs/gallery.md, "The index file"):

- **Sealed.** The payload (template ids, templates and the FAISS structures) is sealed with AES-256-GCM in
  chunks under a key that HKDF derives from the gallery key and ``index_file_salt``, a random value in the
  gallery's ``meta``. Each chunk's associated data binds the header (gallery id, model, kind, version, count),
  the chunk's number and whether it is the last. A file that was edited, truncated, copied from another gallery
  or sealed under another key does not load: an :class:`IndexFileWarning` says so and the index is rebuilt.
- **Erasure makes it unreadable, then removes it.** Every erasure replaces the salt in the transaction that
  deletes the templates (:func:`rotate_salt`), so no file written before it opens again, even from disk blocks
  that linger; then it removes the file (:meth:`IndexFile.discard`) before it returns. A file at an older
  version under the current salt differs from the gallery only by enrolments: it is caught up and rewritten.
- **Atomic, one writer at a time.** It is written to a temporary file (mode 0600) and renamed over the old one,
  under an exclusive lock on ``DB.index.lock``, and only while the gallery is still at the version it holds. An
  erasure removes it under the same lock, so a writer racing an erasure cannot leave erased templates behind.

A PostgreSQL gallery keeps no index file (:func:`index_file_of` is None).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag

from faceaudit.gallery.crypto import NONCE_BYTES, TAG_BYTES, TemplateSealer
from faceaudit.gallery.repository import GalleryRepository

SUFFIX = ".index"
SALT_META = "index_file_salt"
MAGIC = b"faceaudit index file\n"
FORMAT = 1
CHUNK = 1 << 26
"""Bytes of payload per sealed chunk (64 MiB): well under AES-GCM's limits, and the memory a chunk needs."""
_ALIGN = 64
_DTYPES = ("<f4", "<i8", "|u1")


class IndexFileWarning(UserWarning):
    """An index file was not used (altered, truncated, another gallery's or key's, or not writable); the index
    was built from the gallery instead, and nothing stored was changed."""


class IndexFileRefused(Exception):
    """Why a file is not a usable index file of this gallery (said in an :class:`IndexFileWarning`)."""


@dataclass(frozen=True)
class SavedIndex:
    """A loaded index file: its model, the gallery version it was written at, the template width, the id of the
    salt it was sealed under and its arrays."""

    model_id: str
    version: int
    dim: int
    salt: str
    arrays: dict[str, np.ndarray]


def index_file_of(repo: GalleryRepository) -> Path | None:
    """Where the index file of the gallery in ``repo`` lives: ``DB.index`` beside an SQLite file, else None."""
    from faceaudit.gallery.sqlite_repository import SQLiteGalleryRepository

    if isinstance(repo, SQLiteGalleryRepository):
        return Path(f"{os.fspath(repo.path)}{SUFFIX}")
    return None


def rotate_salt(repo: GalleryRepository) -> None:
    """*write.* Replace the index file salt (inside an erasure's transaction): every index file written before
    no longer opens, with any key."""
    repo.set_meta(SALT_META, os.urandom(16).hex())


def _key_id(salt_hex: str) -> str:
    """What the header holds of the salt: a one-way hash, so the file never carries its own key material."""
    return hashlib.sha256(b"faceaudit index file salt\x1f" + salt_hex.encode()).hexdigest()[:32]


class IndexFile:
    """The index file of one SQLite gallery (see the module docstring for its rules)."""

    def __init__(self, path: Path, sealer: TemplateSealer, gallery_id: str) -> None:
        self.path = path
        self._lock_path = Path(f"{path}.lock")
        self._sealer = sealer
        self._gallery_id = gallery_id

    # --- reading ----------------------------------------------------------------------------------------

    def load(self, repo: GalleryRepository, model_id: str, kind: str) -> SavedIndex | None:
        """The saved index of ``model_id`` and ``kind`` (see :meth:`read`), or None; a refused file is reported
        with an :class:`IndexFileWarning`."""
        version, salt = self.expected(repo)
        try:
            return self.read(version, salt, kind, model_id)
        except IndexFileRefused as exc:
            self.report(exc)
            return None

    def expected(self, repo: GalleryRepository) -> tuple[int, str | None]:
        """*read.* The gallery version and the salt a file must have been sealed under (None: no file was ever
        written)."""
        with repo.snapshot():
            return repo.version(), repo.read_meta().get(SALT_META)

    def read(
        self, version: int, salt: str | None, kind: str, model_id: str | None = None
    ) -> SavedIndex | None:
        """The saved index of ``kind`` (and ``model_id``, when given) for a gallery at ``version`` whose salt is
        ``salt`` (from :meth:`expected`); it uses no repository, so it may run in a thread. None: no file,
        another model's or kind's, or written before an erasure. Raises :class:`IndexFileRefused` for a file that
        is not readable, altered, truncated, another gallery's or newer than the gallery. Its version may be
        older than the gallery's: the caller catches it up."""
        try:
            fh = open(self.path, "rb")  # noqa: SIM115  # closed below
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexFileRefused(f"it is not readable ({exc.strerror or exc})") from None
        with fh:
            header, aad = self._read_header(fh)
            n_chunks = max(1, -(-header["size"] // CHUNK))
            if os.fstat(fh.fileno()).st_size != fh.tell() + header["size"] + n_chunks * (
                NONCE_BYTES + TAG_BYTES
            ):
                raise IndexFileRefused("its length does not match its header (truncated or altered)")
            if (model_id is not None and header["model_id"] != model_id) or header["kind"] != kind:
                return None  # another model's or kind's: replaced when this one is saved
            if header["gallery_id"] != self._gallery_id:
                raise IndexFileRefused(f"it belongs to another gallery ({header['gallery_id']})")
            if salt is None or header["key_id"] != _key_id(salt):
                return None  # written before an erasure: it no longer opens
            if header["version"] > version:
                raise IndexFileRefused(
                    f"it is of gallery version {header['version']}, newer than the gallery's {version} "
                    "(was the database restored from a backup?)"
                )
            arrays = self._read_payload(fh, header, aad, salt)
        return SavedIndex(header["model_id"], header["version"], header["dim"], salt, arrays)

    def report(self, exc: Exception) -> None:
        """Say (an :class:`IndexFileWarning`) why the file was not used."""
        warnings.warn(
            IndexFileWarning(f"{self.path}: not used, {exc}; the index is built from the gallery"),
            stacklevel=4,
        )

    def _read_header(self, fh) -> tuple[dict, bytes]:
        start = fh.read(len(MAGIC) + 4)
        if len(start) < len(MAGIC) + 4 or not start.startswith(MAGIC):
            raise IndexFileRefused("it is not an index file (or it was truncated)")
        (size,) = struct.unpack("<I", start[len(MAGIC) :])
        raw = fh.read(size) if size <= 1 << 20 else b""
        try:
            header = json.loads(raw)
            ok = (
                header["format"] == FORMAT
                and all(isinstance(header[k], str) for k in ("gallery_id", "model_id", "kind", "key_id"))
                and all(type(header[k]) is int and header[k] >= 0 for k in ("version", "dim", "size"))
                and isinstance(header["arrays"], list)
            )
        except (ValueError, TypeError, KeyError):
            ok = False
        if not ok or len(raw) != size:
            raise IndexFileRefused("its header is unreadable (altered or truncated)")
        return header, hashlib.sha256(start + raw).digest()

    def _read_payload(self, fh, header: dict, aad: bytes, salt: str) -> dict[str, np.ndarray]:
        """Open the chunks straight into one buffer (through one reused read buffer) and cut it into the arrays
        of the header."""
        aead = self._sealer.index_file_cipher(bytes.fromhex(salt))
        size = int(header["size"])
        payload = _populated(size)
        n_chunks = max(1, -(-size // CHUNK))
        sealed = bytearray(NONCE_BYTES + min(size, CHUNK) + TAG_BYTES)
        for i in range(n_chunks):
            a, b = i * CHUNK, min(size, (i + 1) * CHUNK)
            blob = memoryview(sealed)[: NONCE_BYTES + (b - a) + TAG_BYTES]
            if fh.readinto(blob) != len(blob):
                raise IndexFileRefused("it was truncated")
            try:
                aead.decrypt_into(
                    bytes(blob[:NONCE_BYTES]),
                    blob[NONCE_BYTES:],
                    _chunk_aad(aad, i, i == n_chunks - 1),
                    payload[a:b].data,
                )
            except InvalidTag:
                raise IndexFileRefused(
                    "it does not open (altered, or sealed under another gallery key)"
                ) from None
        if fh.read(1):
            raise IndexFileRefused("it has bytes after its last chunk (altered)")
        arrays = {}
        for name, dtype, shape, offset in header["arrays"]:
            count = int(np.prod(shape))
            nbytes = count * np.dtype(dtype).itemsize
            arrays[name] = payload[offset : offset + nbytes].view(dtype).reshape(shape)
        return arrays

    # --- writing ----------------------------------------------------------------------------------------

    def save(
        self, repo: GalleryRepository, model_id: str, kind: str, version: int, arrays: dict[str, np.ndarray]
    ) -> bool:
        """Write the index of ``model_id`` at gallery ``version`` (atomically, mode 0600); False, writing
        nothing, when the gallery changed since. An :class:`IndexFileWarning` when the file cannot be written."""
        salt = self._salt(repo)
        try:
            with self._locked():
                with repo.snapshot():
                    if repo.version() != version or repo.read_meta().get(SALT_META) != salt:
                        return False  # changed meanwhile (an erasure may just have removed the file)
                self._remove_leftovers()
                self._write(model_id, kind, version, arrays, salt)
        except OSError as exc:
            warnings.warn(
                IndexFileWarning(f"{self.path}: the index file was not written ({exc.strerror or exc})"),
                stacklevel=3,
            )
            return False
        return True

    def _salt(self, repo: GalleryRepository) -> str:
        salt = repo.read_meta().get(SALT_META)
        if salt is None:
            with repo.write():
                salt = repo.read_meta().get(SALT_META)
                if salt is None:
                    rotate_salt(repo)
                    salt = repo.read_meta()[SALT_META]
        return salt

    def _write(
        self, model_id: str, kind: str, version: int, arrays: dict[str, np.ndarray], salt: str
    ) -> None:
        layout, size = [], 0
        for name, arr in arrays.items():
            arr = np.ascontiguousarray(arr)
            dtype = arr.dtype.str
            if dtype not in _DTYPES:
                raise ValueError(f"index array {name} has dtype {arr.dtype}")
            layout.append((name, dtype, list(arr.shape), size))
            size += -(-arr.nbytes // _ALIGN) * _ALIGN
        payload = _populated(size)  # the padding is zero: anonymous pages start zeroed
        for (_, _, _, offset), arr in zip(layout, arrays.values(), strict=True):
            flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
            payload[offset : offset + len(flat)] = flat
        X = arrays["X"]
        header = {
            "format": FORMAT,
            "gallery_id": self._gallery_id,
            "model_id": model_id,
            "kind": kind,
            "version": version,
            "dim": int(X.shape[1]) if X.ndim == 2 else 0,
            "count": len(arrays["ids"]),
            "key_id": _key_id(salt),
            "size": size,
            "arrays": layout,
        }
        raw = json.dumps(header, sort_keys=True).encode()
        start = MAGIC + struct.pack("<I", len(raw))
        aad = hashlib.sha256(start + raw).digest()
        aead = self._sealer.index_file_cipher(bytes.fromhex(salt))
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(start + raw)
                n_chunks = max(1, -(-size // CHUNK))
                sealed = bytearray(min(size, CHUNK) + TAG_BYTES)
                for i in range(n_chunks):
                    nonce = os.urandom(NONCE_BYTES)
                    chunk = payload[i * CHUNK : (i + 1) * CHUNK]
                    blob = memoryview(sealed)[: len(chunk) + TAG_BYTES]
                    aead.encrypt_into(nonce, chunk.data, _chunk_aad(aad, i, i == n_chunks - 1), blob)
                    out.write(nonce)
                    out.write(blob)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # --- removing ---------------------------------------------------------------------------------------

    def discard(self) -> None:
        """Remove the file (and any temporary file a crashed writer left) under the writers' lock, so that no
        writer puts an older file back afterwards. Without the lock file no writer ever wrote one."""
        if not self._lock_path.exists():
            return
        with self._locked():
            self.path.unlink(missing_ok=True)
            self._remove_leftovers()

    def discard_if_invalidated(self, repo: GalleryRepository) -> None:
        """Remove a file written before the last erasure (one that process died before removing it)."""
        try:
            with open(self.path, "rb") as fh:
                header, _ = self._read_header(fh)
        except (FileNotFoundError, IndexFileRefused):
            return
        salt = repo.read_meta().get(SALT_META)
        if salt is None or header["key_id"] != _key_id(salt):
            self.discard()

    def _remove_leftovers(self) -> None:
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _populated(size: int) -> np.ndarray:
    """A writable buffer of ``size`` bytes whose pages are mapped at once (``MAP_POPULATE``): faulting 650 MB in
    a page at a time was most of the time of reading the file at 1M templates."""
    if size == 0:
        return np.empty(0, np.uint8)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    return np.frombuffer(mmap.mmap(-1, size, flags=flags), np.uint8)


def _chunk_aad(header_digest: bytes, i: int, last: bool) -> bytes:
    return header_digest + struct.pack("<QB", i, last)
