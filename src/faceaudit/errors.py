"""One error hierarchy for faceaudit. Every message says what went wrong and what to do next."""

from __future__ import annotations


class FaceAuditError(Exception):
    """Base class of every error that faceaudit raises on purpose."""

    exit_code = 1


class UsageError(FaceAuditError):
    """The command or call was given wrong or missing options."""

    exit_code = 2


class InputError(FaceAuditError):
    """An input file or field is unusable: empty, truncated, corrupt, not an image, too large, or malformed."""

    exit_code = 3

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NoFaceError(InputError):
    """No usable face was found in an image."""


class ModelIntegrityError(FaceAuditError):
    """A model file is missing or its SHA-256 does not match the expected digest."""

    exit_code = 3


class ModelFormatError(InputError):
    """A model file is there but cannot be used: no runtime loads it, or its input shape or metadata cannot be
    fed (a user's own ``onnx:PATH`` model, typically)."""


class ConsentError(FaceAuditError):
    """An enrolment lacks a valid consent record."""

    exit_code = 2


class PolicyError(FaceAuditError):
    """An operation was refused by policy (missing purpose, quality gate, expired consent...)."""

    exit_code = 2


class LedgerIntegrityError(FaceAuditError):
    """The hash chain of the accountability ledger is broken."""

    exit_code = 1

    def __init__(self, entry_seq: int, what: str) -> None:
        self.entry_seq = entry_seq
        self.what = what
        super().__init__(f"ledger entry {entry_seq}: {what}")
