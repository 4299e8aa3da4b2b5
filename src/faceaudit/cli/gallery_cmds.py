"""Gallery, identification and ledger commands: gallery init/enroll/enroll-manifest, identify, verify-subject,
ledger verify/anchor/export (gallery erase/expire/scrub are in :mod:`faceaudit.cli.erasure_cmds`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from faceaudit.cli.engine_cmds import add_model_options, add_threshold_option, make_engine
from faceaudit.cli.erasure_cmds import cmd_erase, cmd_expire, cmd_scrub, cmd_withdraw_declared
from faceaudit.errors import ConsentError, FaceAuditError, InputError, UsageError
from faceaudit.pgsql import is_pg_url

DEFAULT_DB = "faceaudit.db"
PERMANENT = "written to the permanent ledger as given and never erased, so no names of subjects"
OPERATOR = "written to the permanent ledger as given, beside the OS user"
IN_GALLERY = "stored with the subject until erasure; the permanent ledger holds only a keyed hash"
REF_HELP = "the subject's reference; the permanent ledger holds only a keyed pseudonym of it"


def _db_options(p: argparse.ArgumentParser, *, key: bool = True) -> None:
    p.add_argument(
        "--db",
        default=DEFAULT_DB,
        help=f"gallery database: a file (default {DEFAULT_DB}) or postgresql://user@host/dbname",
    )
    if key:
        p.add_argument(
            "--key-file",
            default=None,
            help="gallery key file, used when FACEAUDIT_KEY is unset (default: DB.key)",
        )


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _consent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--consent-basis", default=None, help=f"legal basis of the consent (required); {IN_GALLERY}"
    )
    p.add_argument("--consent-by", default=None, help=f"who recorded the consent (required); {IN_GALLERY}")
    p.add_argument(
        "--consent-expires",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="the day the consent expires (optional)",
    )


def _declared_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--declare",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an attribute the person declared (e.g. sex=F), for bias monitoring only: sealed, never searched or "
        "shown per person, erased with the subject; repeatable; needs --declared-consent-basis/-by",
    )
    p.add_argument("--declared-consent-basis", default=None, help="legal basis for recording --declare")
    p.add_argument("--declared-consent-by", default=None, help="who recorded the consent for --declare")


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser(
        "gallery", help="manage the gallery: init, enroll, enroll-manifest, erase, scrub, expire"
    )
    gsub = g.add_subparsers(dest="gallery_command", metavar="ACTION")
    gsub.required = True

    p = gsub.add_parser("init", help="create a gallery database and its key file (mode 0600)")
    _db_options(p)
    p.add_argument(
        "--index",
        default="exact",
        help="search index: exact (default), hnsw (approximate, for very large galleries) or milvus:URI "
        "(a milvus-lite file.db or http://host:19530; Milvus holds plaintext templates, see docs/scaling.md)",
    )
    p.add_argument(
        "--operator", default=None, help=f"who creates the gallery (default: the OS user); {OPERATOR}"
    )
    p.set_defaults(func=cmd_init)

    p = gsub.add_parser("enroll", help="enrol one consenting subject from reference images")
    p.add_argument("subject_ref", metavar="SUBJECT_REF", help=REF_HELP)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "--name",
        default=None,
        help="the subject's display name (required); stored (bound to the subject) until erasure, never in the "
        "ledger",
    )
    _consent_options(p)
    p.add_argument("--operator", default=None, help=f"who enrols (required); {OPERATOR}")
    p.add_argument(
        "--store-images", action="store_true", help="also keep the images (sealed); off by default"
    )
    _declared_options(p)
    p.add_argument("--json", action="store_true")
    _db_options(p)
    add_model_options(p)
    p.set_defaults(func=cmd_enroll)

    p = gsub.add_parser(
        "enroll-manifest", help="bulk enrolment from a CSV; each subject all or nothing; re-runnable"
    )
    p.add_argument(
        "manifest",
        metavar="MANIFEST.csv",
        help="CSV with subject_ref and path columns; optional name, consent_basis, consent_by, "
        "consent_expires (override the options); refs and names never enter the ledger",
    )
    p.add_argument("--root", required=True, help="folder the manifest's paths are relative to")
    _consent_options(p)
    p.add_argument("--operator", default=None, help=f"who enrols (required); {OPERATOR}")
    _db_options(p)
    add_model_options(p)
    p.set_defaults(func=cmd_enroll_manifest)

    p = gsub.add_parser("erase", help="erase a subject: row, templates, index entries; bytes overwritten")
    p.add_argument("subject_ref", metavar="SUBJECT_REF", help=REF_HELP)
    p.add_argument("--reason", default=None, help=f"why (required); {PERMANENT}")
    p.add_argument("--operator", default=None, help=f"who erases (required); {OPERATOR}")
    p.add_argument("--vacuum", action="store_true", help="also rewrite the whole database file")
    _db_options(p)
    p.set_defaults(func=cmd_erase)

    p = gsub.add_parser(
        "withdraw-declared", help="delete a subject's declared attributes (the subject stays enrolled)"
    )
    p.add_argument("subject_ref", metavar="SUBJECT_REF", help=REF_HELP)
    p.add_argument("--reason", default=None, help=f"why (required); {PERMANENT}")
    p.add_argument("--operator", default=None, help=f"who withdraws them (required); {OPERATOR}")
    _db_options(p)
    p.set_defaults(func=cmd_withdraw_declared)

    p = gsub.add_parser(
        "scrub",
        help="complete pending checkpoints: make erased bytes unrecoverable once other processes closed the "
        "gallery (no key needed)",
    )
    p.add_argument("--vacuum", action="store_true", help="also rewrite the whole database file")
    p.add_argument(
        "--wait", type=float, default=5.0, metavar="SECONDS", help="how long to wait for readers (default 5)"
    )
    _db_options(p, key=False)
    p.set_defaults(func=cmd_scrub)

    p = gsub.add_parser("expire", help="erase every subject whose consent has expired")
    p.add_argument(
        "--as-of", type=_date, default=None, metavar="YYYY-MM-DD", help="the day to judge by (default today)"
    )
    p.add_argument("--operator", default=None, help=f"who runs it (default: the OS user); {OPERATOR}")
    p.add_argument("--vacuum", action="store_true", help="also rewrite the whole database file")
    _db_options(p)
    p.set_defaults(func=cmd_expire)

    p = sub.add_parser("identify", help="1:N search: a candidate list for human review (logged)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--purpose", default=None, help=f"why this search is made (required); {PERMANENT}")
    p.add_argument("--case", default=None, help=f"case reference (required); {PERMANENT}")
    p.add_argument("--operator", default=None, help=f"who searches (required); {OPERATOR}")
    p.add_argument("--top-k", type=int, default=10, help="candidates to list (default 10)")
    add_threshold_option(p)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--no-index-file",
        action="store_true",
        help="build the search index from the gallery instead of loading DB.index (sealed, beside an SQLite "
        "gallery; rewritten when stale, removed by every erasure)",
    )
    _db_options(p)
    add_model_options(p)
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("verify-subject", help="1:1 comparison of an image with one enrolled subject (logged)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("subject_ref", metavar="SUBJECT_REF", help=REF_HELP)
    p.add_argument("--operator", default=None, help=f"who verifies (required); {OPERATOR}")
    p.add_argument("--purpose", default=None, help=f"why (optional); {PERMANENT}")
    p.add_argument("--case", default=None, help=f"case reference (optional); {PERMANENT}")
    add_threshold_option(p)
    p.add_argument("--json", action="store_true")
    _db_options(p)
    add_model_options(p)
    p.set_defaults(func=cmd_verify_subject)


# --- helpers ----------------------------------------------------------------------------------------------------


def _open(args: argparse.Namespace, *, engine: bool = False, create: bool = False, **kw):
    from faceaudit.gallery import Gallery

    return Gallery(
        args.db, key_file=args.key_file, engine=make_engine(args) if engine else None, create=create, **kw
    )


def _consent(basis: str | None, by: str | None, expires: date | None):
    from faceaudit.gallery import Consent

    # Consent checks and converts raw text itself (ConsentError naming the option); its fields hold the result.
    return Consent(basis, by, expires)  # type: ignore[arg-type]  # None is refused by name


def _os_user() -> str:
    from faceaudit.gallery.values import os_user

    return os_user()


# --- gallery --------------------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from faceaudit.gallery import Gallery, default_key_file
    from faceaudit.gallery.crypto import KEY_ENV, generate_key, write_key_file
    from faceaudit.gallery.locations import holds_gallery, is_file_missing, location

    db = args.db
    if not is_file_missing(db) and not is_pg_url(db):
        raise UsageError(f"{db}: a gallery (or another file) is already there; choose another --db")
    if is_pg_url(db) and holds_gallery(db):
        raise UsageError(f"{location(db)}: a gallery is already there; choose another --db")
    key_file = Path(args.key_file) if args.key_file else default_key_file(db)
    note = f"key from ${KEY_ENV}"
    if not os.environ.get(KEY_ENV):
        if key_file is None:
            raise UsageError(
                f"a postgresql:// gallery keeps no key file beside it: give --key-file PATH (created if missing) "
                f"or set {KEY_ENV}"
            )
        if key_file.exists():
            note = f"key from existing {key_file}"
        else:
            write_key_file(key_file, generate_key())
            note = f"new key in {key_file} (mode 0600): keep a copy somewhere safe; without it the gallery is lost"
    gallery = Gallery(
        db, key_file=key_file, create=True, index=args.index, operator=args.operator or _os_user()
    )
    with gallery:
        print(
            f"initialised gallery {gallery.gallery_id} at {location(db)} ({gallery.index_kind} index); {note}",
            file=sys.stderr,
        )
    return 0


def cmd_enroll(args: argparse.Namespace) -> int:
    from faceaudit.gallery import EnrolmentRequest
    from faceaudit.gallery.declared import DeclaredAttributes

    consent = _consent(args.consent_basis, args.consent_by, args.consent_expires)
    declared = DeclaredAttributes.parse(args.declare, args.declared_consent_basis, args.declared_consent_by)
    request = EnrolmentRequest.build(args.subject_ref, args.name, consent, args.operator, declared)
    with _open(args, engine=True) as gallery:
        result = gallery.enroll(
            request.subject_ref,
            args.images,
            name=request.name,
            consent=request.consent,
            operator=request.operator,
            store_images=args.store_images,
            declared=request.declared,
        )
    if args.json:
        print(
            json.dumps(
                {
                    "subject_ref": result.subject_ref,
                    "n_templates": result.n_templates,
                    "ledger_seq": result.ledger_seq,
                }
            )
        )
    else:
        print(
            f"enrolled {result.subject_ref}: {result.n_templates} template(s); ledger entry {result.ledger_seq}"
        )
    return 0


def _read_manifest(path: str) -> list[dict[str, str]]:
    from faceaudit.csvfile import read_csv_table

    table = read_csv_table(path, what="manifest")
    ref_col = table.first_present("subject_ref", "subject_id")
    if ref_col is None or "path" not in table.columns:
        raise InputError(
            path, f"manifest needs 'subject_ref' and 'path' columns (has {sorted(table.columns)})"
        )
    rows = []
    for line, row in table.numbered():
        ref, img = row[ref_col].strip(), row["path"].strip()
        if not ref or not img:
            raise InputError(path, f"line {line}: empty subject_ref or path")
        rows.append({**{k: v.strip() for k, v in row.items() if k}, "subject_ref": ref, "path": img})
    return rows


def cmd_enroll_manifest(args: argparse.Namespace) -> int:
    from faceaudit.cli.progress import progress_bar
    from faceaudit.gallery import Actor, EnrolmentRequest, SubjectExistsError

    operator = Actor.of(args.operator, "enrolment needs the operator's name (--operator)")
    rows = _read_manifest(args.manifest)
    root = Path(args.root)
    if not root.is_dir():
        raise InputError(root, "--root is not a directory")
    subjects: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        subjects.setdefault(row["subject_ref"], []).append(row)
    plans = []
    for ref, items in subjects.items():  # every consent record is checked before anything is enrolled
        first = items[0]
        expires = first.get("consent_expires") or None
        try:
            expires_date = date.fromisoformat(expires) if expires else args.consent_expires
        except ValueError:
            raise InputError(
                args.manifest, f"subject {ref}: consent_expires {expires!r} is not YYYY-MM-DD"
            ) from None
        consent = _consent(
            first.get("consent_basis") or args.consent_basis,
            first.get("consent_by") or args.consent_by,
            expires_date,
        )
        try:
            request = EnrolmentRequest.build(ref, first.get("name") or ref, consent, operator)
        except UsageError as exc:
            raise InputError(args.manifest, f"subject {ref}: {exc}") from None
        plans.append((request.subject_ref, request.name, consent, [root / r["path"] for r in items]))
    enrolled = present = 0
    refused: list[str] = []
    with _open(args, engine=True) as gallery, progress_bar(len(rows), "enrolling") as advance:
        for ref, name, consent, images in plans:
            try:
                if gallery.has_subject(ref):
                    present += 1
                else:
                    gallery.enroll(ref, images, name=name, consent=consent, operator=operator)
                    enrolled += 1
            except SubjectExistsError:
                present += 1  # enrolled by another process meanwhile
            except (InputError, ConsentError) as exc:
                refused.append(f"{ref}: {exc}")
            advance(len(images))
    for line in refused:
        print(f"faceaudit: refused {line}", file=sys.stderr)
    print(
        f"{args.manifest}: {enrolled} subject(s) enrolled, {present} already present, {len(refused)} refused",
        file=sys.stderr,
    )
    return 3 if refused else 0


# --- search -------------------------------------------------------------------------------------------------------


def cmd_identify(args: argparse.Namespace) -> int:
    from faceaudit.gallery import SearchRequest

    request = SearchRequest.build(args.purpose, args.case, args.operator, args.top_k)
    with _open(args, index_file=not args.no_index_file) as gallery:
        gallery.engine = make_engine(args)  # the models load while the index file is read (a thread)
        result = gallery.identify(
            args.image,
            purpose=request.purpose,
            case=request.case,
            operator=request.operator,
            top_k=request.top_k,
        )
    if args.json:
        print(json.dumps(result.as_dict()))
        return 0
    print(
        f"{len(result.candidates)} candidate(s) for human review (threshold {result.threshold:.4f}, "
        f"{result.model_id}); no match decision is made. Ledger entry {result.ledger_seq}."
    )
    for c in result.candidates:
        flag = "above" if c.above_threshold else "below"
        print(f"  {c.rank:>3}. {c.subject_ref:<24} {c.name:<30} {c.similarity:.4f}  {flag} threshold")
    return 0


def cmd_verify_subject(args: argparse.Namespace) -> int:
    from faceaudit.gallery import VerificationRequest

    request = VerificationRequest(args.subject_ref, args.operator, args.purpose, args.case)
    with _open(args, engine=True) as gallery:
        result = gallery.verify_subject(
            args.image,
            request.subject_ref,
            operator=request.operator,
            purpose=request.purpose,
            case=request.case,
        )
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        flag = "above" if result.above_threshold else "below"
        print(
            f"{result.subject_ref} ({result.name}): similarity {result.similarity:.4f}, {flag} threshold "
            f"{result.threshold:.4f} ({result.model_id}); ledger entry {result.ledger_seq}"
        )
    return 0


__all__ = ["register", "FaceAuditError"]
