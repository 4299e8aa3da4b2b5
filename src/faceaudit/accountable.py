"""Accountability values that own their rules: free text, subject refs and principals.

Every value that names a person, a subject or a reason in the ledger, the gallery or the service's records is
built by one of these constructors, on every surface (Python, CLI, HTTP, console). Each normalises or refuses,
and a refusal names the field, so one input always gives one stored value or one refusal:

* :class:`AccountableText` (purpose, case, consent basis and recorder, erasure and review reasons, key labels,
  filter values written to the ledger): Unicode NFC, trimmed, at least one visible character, and no control
  (Cc), format (Cf: bidi embeddings, overrides and isolates, zero-width characters), private-use (Co),
  surrogate (Cs) or unassigned (Cn) character. A purpose can then never be displayed reversed or hide text.
* :class:`SubjectRef`: accountable text of at most :data:`MAX_REF` characters, compared exactly (case matters).
* :class:`Principal`: who acts. Its identity is one canonical form, NFKC then case-folded (``Reviewer-A``,
  ``reviewer-a`` and ``ＲＥＶＩＥＷＥＲ-Ａ`` are one person), and the value *is* that form, so two keys whose
  principals canonicalise alike belong to the same person everywhere: self-review, the two reviewers, the ledger.

The values are ``str`` subclasses: they store, serialise and compare as the normalised text they hold.
Constructing one from a value of its own class returns it unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Self

from faceaudit.errors import UsageError

MAX_TEXT = 2000
"""The longest accountable text (a reason may be a few sentences)."""
MAX_REF = 256
"""The longest subject ref."""
MAX_PRINCIPAL = 128
"""The longest principal name."""

REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "an invisible format character (bidi override, zero-width...)",
    "Co": "a private-use character",
    "Cs": "invalid UTF-8 (a lone surrogate)",
    "Cn": "an unassigned code point",
}
"""Unicode general categories refused anywhere in accountable text, with how the refusal describes them."""

_DRAWS_NOTHING = frozenset({"Zs", "Zl", "Zp", "Mn", "Me"})
"""Categories that draw nothing on their own (separators, combining marks): text of only these is blank."""


class TextRefused(UsageError):
    """Accountable text that was refused; ``field`` is the machine name of the field (``purpose``), when known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _field_name(what: str) -> str | None:
    """``purpose`` for ``"purpose"`` or ``"--purpose"``; None for a sentence."""
    name = what.lstrip("-").replace("-", "_")
    return name if name.isidentifier() else None


def field_of(what: str) -> str | None:
    """The machine name of the field that ``what`` describes: ``purpose`` for ``"purpose"``, ``"--purpose"`` or a
    sentence that ends ``(--purpose)``; None when it names none."""
    found = re.search(r"\(--([a-z][a-z-]*)\)\s*$", what)
    return found.group(1).replace("-", "_") if found else _field_name(what)


def clean_text(value: object, what: str, exc: type[Exception] = UsageError, max_len: int = MAX_TEXT) -> str:
    """``value`` in Unicode NFC, trimmed; raises ``exc`` naming ``what`` when it is not usable accountable text.

    Refused: ``None``, bytes, a value with no visible character, a value holding a character of one of
    :data:`REFUSED_CATEGORIES`, and a value longer than ``max_len`` characters. ``what`` names the field, e.g.
    ``"identification needs a stated purpose (--purpose)"``.
    """
    blank = what
    if exc is UsageError:
        exc = _refusal(what)
        blank = f"{what}: must not be blank" if _field_name(what) else what
    try:
        return _clean(value, what, blank, max_len)
    except _Refusal as refusal:
        err = exc(refusal.message)
        if not hasattr(err, "field"):
            err.field = field_of(what)  # type: ignore[attr-defined]
        raise err from None


class _Refusal(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _clean(value: object, what: str, blank: str, max_len: int) -> str:
    exc = _Refusal
    if value is None:
        raise exc(blank)
    if isinstance(value, bytes | bytearray):
        raise exc(f"{what}: give text, not bytes")
    text = unicodedata.normalize("NFC", str(value)).strip()
    for c in text:
        category = unicodedata.category(c)
        if category in REFUSED_CATEGORIES:
            raise exc(f"{what}: the value holds {REFUSED_CATEGORIES[category]} (U+{ord(c):04X})")
    if not any(unicodedata.category(c) not in _DRAWS_NOTHING for c in text):
        raise exc(blank)
    if len(text) > max_len:
        raise exc(f"{what}: at most {max_len} characters (got {len(text)})")
    return text


def _refusal(what: str) -> type[Exception]:
    field = field_of(what)

    class _Refused(TextRefused):
        def __init__(self, message: str) -> None:
            super().__init__(message, field)

    _Refused.__name__ = _Refused.__qualname__ = "TextRefused"
    return _Refused


class AccountableText(str):
    """Free text that enters the ledger or an accountability record, normalised or refused on construction.

    ``AccountableText(value, "purpose")`` raises ``UsageError`` (or ``exc``) naming ``purpose`` when the value
    is unusable (see :func:`clean_text`).
    """

    __slots__ = ()
    max_len = MAX_TEXT

    def __new__(cls, value: object, field: str = "text", exc: type[Exception] = UsageError) -> Self:
        if type(value) is cls:
            return value  # type: ignore[return-value]
        return super().__new__(cls, cls._normalise(clean_text(value, field, exc, cls.max_len)))

    @classmethod
    def _normalise(cls, text: str) -> str:
        return text

    @classmethod
    def optional(cls, value: object, field: str, exc: type[Exception] = UsageError) -> Self | None:
        """The value, or None for None or an empty string (an optional field left out)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return cls(value, field, exc)


class SubjectRef(AccountableText):
    """The caller's key for an enrolled subject: accountable text of at most 256 characters, case-sensitive."""

    __slots__ = ()
    max_len = MAX_REF

    def __new__(cls, value: object, field: str = "subject_ref", exc: type[Exception] = UsageError) -> Self:
        return super().__new__(cls, value, field, exc)


def canonical_principal(text: str) -> str:
    """The canonical form of a principal's name: NFKC, case-folded, NFKC again (idempotent)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


class Principal(AccountableText):
    """Who acts (an API key's owner, a CLI operator): its value is the canonical form of the name given.

    ``Principal("Reviewer-A") == Principal("reviewer-a") == "reviewer-a"``. Refused like any accountable text,
    and when the canonical form is longer than 128 characters.
    """

    __slots__ = ()
    max_len = MAX_PRINCIPAL

    def __new__(cls, value: object, field: str = "principal", exc: type[Exception] = UsageError) -> Self:
        return super().__new__(cls, value, field, exc)

    @classmethod
    def _normalise(cls, text: str) -> str:
        canonical = canonical_principal(text)
        if len(canonical) > MAX_PRINCIPAL:
            raise UsageError(f"principal: at most {MAX_PRINCIPAL} characters")
        return canonical


def same_principal(a: str, b: str) -> bool:
    """Whether two principal names name the same person (compared in canonical form)."""
    return canonical_principal(a.strip()) == canonical_principal(b.strip())


__all__ = [
    "MAX_PRINCIPAL",
    "MAX_REF",
    "MAX_TEXT",
    "AccountableText",
    "TextRefused",
    "Principal",
    "SubjectRef",
    "canonical_principal",
    "clean_text",
    "same_principal",
]
