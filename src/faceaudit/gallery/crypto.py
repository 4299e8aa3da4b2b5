"""Template sealing with AES-256-GCM, gallery keys, and the keyed subject pseudonyms written to the ledger."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from faceaudit.errors import FaceAuditError

KEY_ENV = "FACEAUDIT_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_CHECK = b"faceaudit gallery key check v1"


class GalleryKeyError(FaceAuditError):
    """The gallery key is missing, malformed or wrong. Nothing was changed."""

    exit_code = 2


def generate_key() -> bytes:
    """A fresh random 256-bit gallery key."""
    return os.urandom(KEY_BYTES)


def parse_key(text: str | bytes, source: str = "key") -> bytes:
    """A 32-byte key from 64 hex digits or base64 text (raw 32 bytes are accepted as they are)."""
    if isinstance(text, bytes) and len(text) == KEY_BYTES:
        return text
    try:
        value = text.decode("ascii") if isinstance(text, bytes) else text
        value = value.strip()
        value.encode("ascii")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise GalleryKeyError(
            f"{source}: a gallery key is 32 bytes written as 64 hex digits or base64"
        ) from None
    try:
        key = bytes.fromhex(value) if len(value) == 2 * KEY_BYTES else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != KEY_BYTES:
        raise GalleryKeyError(f"{source}: a gallery key is 32 bytes written as 64 hex digits or base64")
    return key


def write_key_file(path: str | os.PathLike, key: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``key`` in hex; refuse to overwrite an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise GalleryKeyError(f"{path}: a key file already exists; keep it, or move it away first") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def load_key(key: str | bytes | None = None, key_file: str | os.PathLike | None = None) -> bytes:
    """The gallery key: ``key`` if given, else ``$FACEAUDIT_KEY``, else ``key_file``. Raises GalleryKeyError."""
    if key is not None:
        return parse_key(key, "key")
    env = os.environ.get(KEY_ENV, "")
    if env:
        return parse_key(env, KEY_ENV)
    if key_file is not None and Path(key_file).is_file():
        mode = stat.S_IMODE(os.stat(key_file).st_mode)
        if mode & 0o077:
            raise GalleryKeyError(
                f"{key_file}: the key file is readable by others (mode {mode:o}); chmod 600 it"
            )
        try:
            text = Path(key_file).read_bytes().decode("ascii")
        except OSError as exc:
            raise GalleryKeyError(
                f"{key_file}: the key file cannot be read ({exc.strerror or exc})"
            ) from None
        except UnicodeDecodeError:
            raise GalleryKeyError(
                f"{key_file}: the key file is not a gallery key (64 hex digits or base64 text)"
            ) from None
        return parse_key(text, str(key_file))
    where = (
        f" or keep the key in {key_file}"
        if key_file is not None
        else " or give the key file with --key-file PATH (a database URL keeps no key file beside it)"
    )
    raise GalleryKeyError(f"no gallery key: set {KEY_ENV}{where} (created by 'faceaudit gallery init')")


def _derive(key: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


class TemplateSealer:
    """The template format, end to end: seal and open templates (and stored images) with AES-256-GCM.

    A sealed blob is ``nonce(12) ‖ ciphertext ‖ tag(16)``. Its associated data binds it to its gallery, subject
    and model (``faceaudit ␟ KIND ␟ v1 ␟ gallery_id ␟ subject_ref ␟ model_id``): a blob moved to another row,
    subject, model or gallery no longer opens. Nothing outside this class builds or parses that format.

    The gallery key is never used directly: HKDF derives one key for templates and images and another for the
    subject pseudonyms of the ledger.
    """

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(_derive(key, b"faceaudit template sealing v1"))
        self._pseudonym_key = _derive(key, b"faceaudit ledger subject pseudonym v1")
        self._digest_key = _derive(key, b"faceaudit ledger digest v1")
        self._binding_key = _derive(key, b"faceaudit gallery row binding v1")
        self._index_file_key = _derive(key, b"faceaudit index file v1")

    @staticmethod
    def _aad(kind: str, gallery_id: str, subject_ref: str, model_id: str) -> bytes:
        return "\x1f".join(("faceaudit", kind, "v1", gallery_id, subject_ref, model_id)).encode()

    def _seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def _open(self, blob: object, aad: bytes) -> bytes:
        if not isinstance(blob, bytes) or len(blob) < NONCE_BYTES + TAG_BYTES:
            raise GalleryKeyError(
                "a template does not decrypt: the row was altered (its sealed blob is not a sealed template)"
            )
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise GalleryKeyError(
                "a template does not decrypt: wrong gallery key, or the row was altered "
                "(moved to another subject or model)"
            ) from None

    def seal(self, vector: np.ndarray, *, gallery_id: str, subject_ref: str, model_id: str) -> bytes:
        """Encrypt one float32 template."""
        data = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        return self._seal(data, self._aad("template", gallery_id, subject_ref, model_id))

    def open(self, blob: bytes, *, gallery_id: str, subject_ref: str, model_id: str) -> np.ndarray:
        """Decrypt and authenticate one template back to float32; GalleryKeyError when it does not open."""
        data = self._open(blob, self._aad("template", gallery_id, subject_ref, model_id))
        if not data or len(data) % 4:
            raise GalleryKeyError("a template does not decrypt to float32 values: the row was altered")
        return np.frombuffer(data, dtype="<f4")

    def open_many(
        self, rows: Iterable[tuple[int, str, bytes]], *, gallery_id: str, model_id: str, n: int, dim: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Open ``(template id, subject_ref, blob)`` rows (at most ``n``) into ``(ids, N×dim float32)``.

        ``dim`` is the width when there are no rows. Raises GalleryKeyError on the first blob that does not open.
        """
        ids = np.empty(n, np.int64)
        vectors: np.ndarray | None = None
        i = 0
        for tid, subject_ref, blob in rows:
            if i >= n:
                break
            vector = self.open(blob, gallery_id=gallery_id, subject_ref=subject_ref, model_id=model_id)
            if vectors is None:
                vectors = np.empty((n, len(vector)), np.float32)
            if len(vector) != vectors.shape[1]:
                raise GalleryKeyError(f"template {tid} has {len(vector)} values, not {vectors.shape[1]}")
            vectors[i] = vector
            ids[i] = tid
            i += 1
        if vectors is None:
            return ids[:0], np.zeros((0, dim), np.float32)
        return ids[:i], vectors[:i]

    def seal_image(self, data: bytes, *, gallery_id: str, subject_ref: str, model_id: str) -> bytes:
        """Encrypt the encoded bytes of a reference image (stored only on request)."""
        return self._seal(data, self._aad("image", gallery_id, subject_ref, model_id))

    def open_image(self, blob: bytes, *, gallery_id: str, subject_ref: str, model_id: str) -> bytes:
        """Decrypt a stored reference image."""
        return self._open(blob, self._aad("image", gallery_id, subject_ref, model_id))

    def seal_declared(self, data: bytes, *, gallery_id: str, subject_ref: str) -> bytes:
        """Encrypt a subject's declared attributes (bound to its gallery and subject like a template)."""
        return self._seal(data, self._aad("declared", gallery_id, subject_ref, ""))

    def open_declared(self, blob: bytes, *, gallery_id: str, subject_ref: str) -> bytes:
        """Decrypt a subject's declared attributes."""
        return self._open(blob, self._aad("declared", gallery_id, subject_ref, ""))

    def index_file_cipher(self, salt: bytes) -> AESGCM:
        """The AES-256-GCM key of the gallery's index file (:mod:`.index_file`): HKDF of a key derived for index
        files alone, salted with ``salt``, a random value kept in the gallery and replaced by every erasure."""
        return AESGCM(_derive(self._index_file_key, b"v1", salt))

    def key_check(self, gallery_id: str) -> bytes:
        """A sealed constant stored in the gallery, so a wrong key is caught before anything is written."""
        return self._seal(_KEY_CHECK, gallery_id.encode())

    def check_key(self, blob: bytes, gallery_id: str, where: str) -> None:
        """Raise GalleryKeyError unless ``blob`` opens with this key."""
        try:
            ok = self._open(blob, gallery_id.encode()) == _KEY_CHECK
        except GalleryKeyError:
            ok = False
        if not ok:
            raise GalleryKeyError(
                f"{where}: wrong gallery key (it does not open this gallery); nothing was changed"
            )

    def name_binding(self, gallery_id: str, subject_ref: str, name: str) -> str:
        """A keyed hash that binds a display name to its subject and gallery (stored beside the name)."""
        message = "\x1f".join(("faceaudit", "name", "v1", gallery_id, subject_ref, name)).encode()
        return hmac.new(self._binding_key, message, hashlib.sha256).hexdigest()

    def name_is_bound(self, binding: str | None, gallery_id: str, subject_ref: str, name: str) -> bool:
        """Whether ``binding`` is this name's binding to this subject (False for a missing or moved name)."""
        expected = self.name_binding(gallery_id, subject_ref, name)
        return isinstance(binding, str) and hmac.compare_digest(binding, expected)

    def ledger_digest(self, kind: str, *values: str) -> str:
        """A keyed hash (HMAC-SHA256, 64 hex digits) of ``values`` for the ledger, in place of the values: a photo's
        SHA-256 (``kind="photo"``) or a consent record (``kind="consent"``). Without the gallery key it proves
        nothing about a person, so nothing in the ledger links to them after erasure. Empty values stay empty."""
        if not any(values):
            return ""
        message = "\x1f".join((kind, *values)).encode()
        return hmac.new(self._digest_key, message, hashlib.sha256).hexdigest()

    def pseudonym(self, subject_ref: str) -> str:
        """The keyed hash that stands for a subject in the ledger: HMAC-SHA256 of the subject ref, 128 bits."""
        return "subj:" + hmac.new(self._pseudonym_key, subject_ref.encode(), hashlib.sha256).hexdigest()[:32]
