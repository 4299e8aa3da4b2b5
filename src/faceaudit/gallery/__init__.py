"""The gallery: encrypted templates of consented subjects in SQLite, a FAISS index, and the ledger of every use."""

from __future__ import annotations

from faceaudit.gallery.crypto import GalleryKeyError
from faceaudit.gallery.gallery import Gallery, default_key_file
from faceaudit.gallery.ledger_view import GalleryLedger
from faceaudit.gallery.records import (
    Candidate,
    Consent,
    EnrollResult,
    IdentifyResult,
    SubjectExistsError,
    SubjectNotFoundError,
    SubjectVerifyResult,
)
from faceaudit.gallery.store import GalleryNotFoundError

__all__ = [
    "Candidate",
    "Consent",
    "EnrollResult",
    "Gallery",
    "GalleryKeyError",
    "GalleryLedger",
    "GalleryNotFoundError",
    "IdentifyResult",
    "SubjectExistsError",
    "SubjectNotFoundError",
    "SubjectVerifyResult",
    "default_key_file",
]
