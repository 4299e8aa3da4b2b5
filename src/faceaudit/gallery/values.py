"""Request values that check themselves when they are built: who acts, the consent record, an enrolment, a search.

The CLI, the Python API and the HTTP service build these values, so every entry point shares one rule. Every
free-text field is an :class:`~faceaudit.accountable.AccountableText`, every ref a
:class:`~faceaudit.accountable.SubjectRef` and every operator a :class:`~faceaudit.accountable.Principal`
(:mod:`faceaudit.accountable` holds the rules). A value that fails names the field (and its command-line option)
in the error.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from faceaudit.accountable import AccountableText, Principal, SubjectRef, clean_text
from faceaudit.errors import ConsentError, PolicyError, UsageError


def utc_today() -> date:
    """Today's date in UTC (consent expiry is judged by it)."""
    return datetime.now(UTC).date()


def os_user() -> str:
    """The login name of the operating-system user running this process ("unknown" when there is none)."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: the name that goes into a ledger entry's ``actor``, and how that name was established.

    * ``Actor.local(operator)``: CLI or Python API use on this machine. The operator is as typed (nothing
      authenticates it), so the OS user running the process is recorded beside it (``auth="local"``).
    * ``Actor.service(principal, key_id)``: a request that the HTTP service authenticated with an API key; the
      principal is the key's owner as the server knows it, never what the client claims (``auth="api-key"``).
    """

    operator: Principal
    auth: str = "local"
    key_id: str | None = None
    os_user: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "operator", Principal(self.operator, "the operator's name (--operator)"))
        if self.auth not in ("local", "api-key"):
            raise UsageError(f"actor auth must be 'local' or 'api-key', not {self.auth!r}")
        if self.auth == "api-key":
            object.__setattr__(self, "key_id", clean_text(self.key_id, "an API-key actor needs its key id"))

    @classmethod
    def local(cls, operator: str) -> Actor:
        """Local use: the typed operator name and the OS user of this process."""
        return cls(Principal(operator, "the operator's name (--operator)"), "local", None, os_user())

    @classmethod
    def service(cls, principal: str, key_id: str) -> Actor:
        """A service request authenticated by API key ``key_id``, which belongs to ``principal``."""
        return cls(Principal(principal), "api-key", key_id, None)

    @classmethod
    def of(cls, operator: str | Actor | None, what: str, exc: type[Exception] = UsageError) -> Actor:
        """``operator`` as an Actor: a string means local use. ``what`` is the error when it is missing."""
        if isinstance(operator, Actor):
            return operator
        return cls.local(Principal(operator, what, exc))

    def ledger_auth(self) -> dict[str, Any]:
        """What the ledger entry records beside ``actor``: the auth kind and the key id or the OS user."""
        if self.auth == "api-key":
            return {"auth": self.auth, "key_id": self.key_id}
        return {"auth": self.auth, "os_user": self.os_user}


@dataclass(frozen=True, slots=True)
class Consent:
    """The consent record of a subject: its legal basis, who recorded it, and an optional expiry date.

    Consent is valid up to the day before ``expires``: on ``expires`` it has expired. Building a record checks
    it (ConsentError, exit 2): basis and recorder must be usable text, and the expiry must lie in the future.
    """

    basis: str
    """Accountable text (:class:`~faceaudit.accountable.AccountableText` once built)."""
    recorded_by: str
    """Accountable text, as ``basis``."""
    expires: date | None = None

    def __post_init__(self) -> None:
        basis = AccountableText(
            self.basis,
            "enrolment needs a consent record: give the consent basis (--consent-basis)",
            ConsentError,
        )
        by = AccountableText(
            self.recorded_by,
            "enrolment needs a consent record: say who recorded it (--consent-by)",
            ConsentError,
        )
        object.__setattr__(self, "basis", basis)
        object.__setattr__(self, "recorded_by", by)
        if self.expires is not None and not isinstance(self.expires, date):
            raise ConsentError(f"consent expiry {self.expires!r} is not a date (YYYY-MM-DD)")
        self.validate()

    def validate(self, today: date | None = None) -> None:
        """Raise ConsentError if the record has expired by ``today`` (default: today in UTC)."""
        if self.expires is not None and self.expires <= (today or utc_today()):
            raise ConsentError(
                f"the consent expires on {self.expires.isoformat()}, which is not in the future"
            )


MAX_ATTRIBUTES = 8
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_VALUE_CHARS = 64


class DeclaredAttributeError(UsageError):
    """A declared attribute is malformed (names the field)."""


@dataclass(frozen=True, slots=True)
class DeclaredAttributes:
    """Attributes a person declared about themselves (``{"sex": "F", "age_band": "30-39"}``) and the consent
    under which they were recorded, for audit only. Checked when built: keys are short lowercase identifiers,
    values accountable text of at most 64 characters, at most 8 attributes, and a consent record is required."""

    values: Mapping[str, str]
    consent: Consent

    def __post_init__(self) -> None:
        if not isinstance(self.consent, Consent):
            raise ConsentError(
                "declared attributes need their own consent record "
                "(--declared-consent-basis and --declared-consent-by)"
            )
        if not isinstance(self.values, Mapping) or not self.values:
            raise DeclaredAttributeError("declared attributes: give at least one key=value")
        if len(self.values) > MAX_ATTRIBUTES:
            raise DeclaredAttributeError(f"declared attributes: at most {MAX_ATTRIBUTES}")
        clean: dict[str, str] = {}
        for key, value in self.values.items():
            k = str(AccountableText(key, "declared attribute name")).lower()
            if not _KEY.fullmatch(k):
                raise DeclaredAttributeError(
                    f"declared attribute name {key!r}: use a lowercase name of letters, digits and '_' "
                    "(at most 32)"
                )
            v = AccountableText(value, f"declared attribute {k!r}")
            if len(v) > MAX_VALUE_CHARS:
                raise DeclaredAttributeError(
                    f"declared attribute {k!r}: at most {MAX_VALUE_CHARS} characters"
                )
            clean[k] = str(v)
        object.__setattr__(self, "values", dict(sorted(clean.items())))

    @classmethod
    def parse(cls, pairs: list[str], basis: str | None, recorded_by: str | None) -> DeclaredAttributes | None:
        """From ``key=value`` strings (CLI ``--declare``, form field ``declared``); None when there are none."""
        if not pairs:
            return None
        values: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise DeclaredAttributeError(f"declared attribute {pair!r}: write it as key=value")
            if key.strip().lower() in values:
                raise DeclaredAttributeError(f"declared attribute {key.strip()!r} is given twice")
            values[key.strip().lower()] = value
        if not (basis or "").strip() or not (recorded_by or "").strip():
            raise ConsentError(
                "declared attributes need their own consent record: give --declared-consent-basis and "
                "--declared-consent-by (form fields declared_consent_basis, declared_consent_by)"
            )
        return cls(values, Consent(basis, recorded_by))  # type: ignore[arg-type]

    def to_json(self, recorded_at: str) -> bytes:
        """The plaintext that is sealed: the values and their consent record."""
        return json.dumps(
            {
                "values": dict(self.values),
                "consent": {
                    "basis": str(self.consent.basis),
                    "by": str(self.consent.recorded_by),
                    "at": recorded_at,
                },
            },
            sort_keys=True,
            ensure_ascii=False,
        ).encode()

    def canonical(self) -> str:
        """A canonical text of the values (what the ledger's keyed hash is taken over)."""
        return json.dumps(dict(self.values), sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class EnrolmentRequest:
    """One subject to enrol: its ref and name, the consent record, who enrols, and optionally the attributes the
    person declared (for bias monitoring only). Checked when built."""

    subject_ref: SubjectRef
    name: AccountableText
    consent: Consent
    operator: Actor
    declared: DeclaredAttributes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject_ref", SubjectRef(self.subject_ref, "enrolment needs a subject ref"))
        object.__setattr__(
            self, "name", AccountableText(self.name, "enrolment needs the subject's name (--name)")
        )
        if not isinstance(self.consent, Consent):
            raise ConsentError("enrolment needs a consent record (a Consent)")
        self.consent.validate()
        object.__setattr__(
            self,
            "operator",
            Actor.of(self.operator, "enrolment needs the operator's name (--operator)"),
        )
        if self.declared is not None and not isinstance(self.declared, DeclaredAttributes):
            raise UsageError("declared attributes must be a DeclaredAttributes value")

    @classmethod
    def build(
        cls,
        subject_ref: str,
        name: str,
        consent: Consent,
        operator: str | Actor,
        declared: DeclaredAttributes | None = None,
    ) -> EnrolmentRequest:
        """The same as the constructor, with ``operator`` typed for callers that pass a name."""
        return cls(subject_ref, name, consent, operator, declared)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A 1:N search: why (purpose, case), who, how many candidates, and an optional threshold override.

    A search without a purpose, a case reference or an operator is refused (PolicyError, exit 2), naming every
    missing option.
    """

    purpose: AccountableText
    case: AccountableText
    operator: Actor
    top_k: int = 10
    threshold: float | None = None

    def __post_init__(self) -> None:
        fields = {"--purpose": self.purpose, "--case": self.case}
        if not isinstance(self.operator, Actor):
            fields["--operator"] = self.operator
        cleaned: dict[str, AccountableText] = {}
        missing: list[str] = []
        for option, value in fields.items():
            try:
                cleaned[option] = AccountableText(value, option, PolicyError)
            except PolicyError as exc:
                missing.append(str(exc))
        if missing:
            raise PolicyError(
                "identification needs a stated purpose, a case reference and an operator: "
                f"give {', '.join(missing)}"
            )
        object.__setattr__(self, "purpose", cleaned["--purpose"])
        object.__setattr__(self, "case", cleaned["--case"])
        if "--operator" in cleaned:
            object.__setattr__(self, "operator", Actor.local(str(cleaned["--operator"])))
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise UsageError("--top-k must be at least 1")
        if self.threshold is not None:
            object.__setattr__(self, "threshold", float(self.threshold))

    @classmethod
    def build(
        cls,
        purpose: str,
        case: str,
        operator: str | Actor,
        top_k: int = 10,
        threshold: float | None = None,
    ) -> SearchRequest:
        """The same as the constructor, with ``operator`` typed for callers that pass a name."""
        return cls(purpose, case, operator, top_k, threshold)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class VerificationRequest:
    """A 1:1 check of a probe against one enrolled subject: the subject, who asks, and (optionally) why."""

    subject_ref: SubjectRef
    operator: Actor
    purpose: AccountableText | None = None
    case: AccountableText | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "subject_ref", SubjectRef(self.subject_ref, "verification needs a subject ref", PolicyError)
        )
        object.__setattr__(
            self,
            "operator",
            Actor.of(self.operator, "verification needs the operator's name (--operator)", PolicyError),
        )
        for name, option in (("purpose", "--purpose"), ("case", "--case")):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, AccountableText(value, f"verification: {option}", PolicyError))
