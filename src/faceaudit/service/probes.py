"""Probe images kept for the two-person review, sealed with AES-256-GCM under a key derived from the gallery key.

A probe is kept only while its search waits for review: the decision that confirms or rejects the search
deletes it.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class ProbeSealer:
    """Seal and open probe images; the associated data binds each to its gallery and search."""

    def __init__(self, gallery_key: bytes, gallery_id: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"faceaudit probe sealing v1"
        ).derive(gallery_key)
        self._aead = AESGCM(key)
        self._gallery_id = gallery_id

    def _aad(self, search_id: str) -> bytes:
        return f"faceaudit\x1fprobe\x1fv1\x1f{self._gallery_id}\x1f{search_id}".encode()

    def seal(self, data: bytes, search_id: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, self._aad(search_id))

    def open(self, blob: bytes, search_id: str) -> bytes:
        return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._aad(search_id))
