"""Signed reports: an Ed25519 signature over ``audit.json``, and the hashes that tie it to its inputs.

The signature covers the canonical form of the document without its ``signature`` field: JSON with sorted
keys, no whitespace, UTF-8. Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public), e.g.::

    openssl genpkey -algorithm ed25519 -out audit-key.pem
    openssl pkey -in audit-key.pem -pubout -out audit-key.pub.pem
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

from faceaudit.errors import FaceAuditError, InputError

ALGORITHM = "Ed25519"
CANONICAL = "JSON of the document without 'signature': keys sorted, no whitespace, UTF-8"


class ReportSignatureError(FaceAuditError):
    """A report's signature is missing, made with another key, or does not match its content."""

    exit_code = 1


def canonical(doc: dict) -> bytes:
    """The bytes that are signed."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _read_key(path: str | os.PathLike, private: bool):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the key file ({exc.strerror})") from None
    try:
        if private:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InputError(path, f"not a PEM {'private' if private else 'public'} key ({exc})") from None
    want = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, want):
        raise InputError(path, f"not an Ed25519 key (a {type(key).__name__})")
    return key


def _fingerprint(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(doc: dict, private_key_path: str | os.PathLike) -> dict:
    """``doc`` with a ``signature`` field: algorithm, key fingerprint, what was signed, and the value."""
    key = _read_key(private_key_path, private=True)
    value = key.sign(canonical(doc))
    return {
        **{k: v for k, v in doc.items() if k != "signature"},
        "signature": {
            "algorithm": ALGORITHM,
            "public_key_sha256": _fingerprint(key.public_key()),
            "signed": CANONICAL,
            "value": base64.b64encode(value).decode(),
        },
    }


def verify(doc: dict, public_key_path: str | os.PathLike) -> str:
    """Check ``doc``'s signature with the public key; return the key's fingerprint, or raise
    :class:`ReportSignatureError` saying what is wrong."""
    from cryptography.exceptions import InvalidSignature

    key = _read_key(public_key_path, private=False)
    sig = doc.get("signature")
    if not isinstance(sig, dict) or "value" not in sig:
        raise ReportSignatureError("the report is not signed (no 'signature' field)")
    if sig.get("algorithm") != ALGORITHM:
        raise ReportSignatureError(f"unknown signature algorithm {sig.get('algorithm')!r}")
    fp = _fingerprint(key)
    if sig.get("public_key_sha256") not in (None, fp):
        raise ReportSignatureError(
            f"the report was signed with another key (fingerprint {sig.get('public_key_sha256')}, "
            f"this public key is {fp})"
        )
    try:
        key.verify(base64.b64decode(sig["value"]), canonical(doc))
    except (InvalidSignature, ValueError):
        raise ReportSignatureError(
            "the signature does not match the report's content: audit.json was changed after signing"
        ) from None
    return fp


def model_file_sha256(model_id: str) -> str | None:
    """The SHA-256 of the model file behind ``model_id`` (faceaudit's own models), or None when unknown.

    For ``onnx:<file>:<sha12>`` ids only the 12-digit prefix is known, and it is returned as such.
    """
    from faceaudit.models import files

    if model_id.startswith("sface"):
        return files.SFACE.sha256
    if model_id.startswith("dlib"):
        try:
            return files.sha256_of(files.DLIB_RESNET.path())
        except (FaceAuditError, OSError):
            return None
    if model_id.startswith("onnx:"):
        return model_id.rsplit(":", 1)[-1] + " (prefix)"
    return None
