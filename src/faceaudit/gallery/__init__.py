"""The gallery: encrypted templates of consented subjects in SQLite, a FAISS index, and the ledger of every use.

Importing this package loads neither image decoding nor FAISS nor any model: a key-less ``ledger verify``
(:class:`GalleryLedger`) stays light. Those load when a gallery first decodes an image or builds its index.
"""

from __future__ import annotations

from faceaudit.gallery.crypto import GalleryKeyError
from faceaudit.gallery.gallery import Gallery, default_key_file
from faceaudit.gallery.ledger_view import GalleryLedger
from faceaudit.gallery.records import (
    Candidate,
    EnrollResult,
    IdentifyResult,
    SubjectExistsError,
    SubjectNotFoundError,
    SubjectVerifyResult,
)
from faceaudit.gallery.repository import GalleryRepository
from faceaudit.gallery.sqlite_file import GalleryNotFoundError
from faceaudit.gallery.values import Actor, Consent, EnrolmentRequest, SearchRequest, VerificationRequest

__all__ = [
    "Actor",
    "Candidate",
    "Consent",
    "EnrolmentRequest",
    "EnrollResult",
    "Gallery",
    "GalleryKeyError",
    "GalleryLedger",
    "GalleryNotFoundError",
    "GalleryRepository",
    "IdentifyResult",
    "SearchRequest",
    "SubjectExistsError",
    "SubjectNotFoundError",
    "SubjectVerifyResult",
    "VerificationRequest",
    "default_key_file",
]
