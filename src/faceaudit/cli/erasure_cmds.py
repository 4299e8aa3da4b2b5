"""Erasure commands: gallery erase, expire and scrub. An erasure deletes the subject, forgets it in the service's
stored searches (same database), then scrubs the erased bytes out of the files."""

from __future__ import annotations

import argparse
import sys

from faceaudit.pgsql import is_pg_url


def _open(args: argparse.Namespace):
    from faceaudit.gallery import Gallery

    return Gallery(args.db, key_file=args.key_file)


def cmd_erase(args: argparse.Namespace) -> int:
    from faceaudit.gallery import Actor
    from faceaudit.gallery.values import clean_text

    ref = clean_text(args.subject_ref, "erasure needs a subject ref")
    reason = clean_text(args.reason, "erasure needs a reason (--reason)")
    operator = Actor.of(args.operator, "erasure needs the operator's name (--operator)")
    with _open(args) as gallery:
        seq = gallery.erase(ref, reason=reason, operator=operator, vacuum=args.vacuum, scrub=False)
        print(f"erased {ref}; ledger entry {seq}", file=sys.stderr)
        _scrub(gallery, args.vacuum)
    return 0


def cmd_withdraw_declared(args: argparse.Namespace) -> int:
    from faceaudit.gallery import Actor

    operator = Actor.of(args.operator, "withdrawal needs the operator's name (--operator)")
    with _open(args) as gallery:
        seq = gallery.withdraw_declared(args.subject_ref, reason=args.reason or "", operator=operator)
    print(f"deleted the declared attributes of {args.subject_ref}; ledger entry {seq}", file=sys.stderr)
    return 0


def _scrub(gallery, vacuum: bool) -> bool:
    """Scrub after a committed erasure; say at once, and plainly, when the bytes could not be reclaimed yet."""
    from faceaudit.gallery.repository import scrub_pending_message

    if gallery.scrub(vacuum=vacuum):
        return True
    print(f"faceaudit: warning: {scrub_pending_message(gallery.path)}", file=sys.stderr)
    return False


def cmd_scrub(args: argparse.Namespace) -> int:
    from faceaudit.gallery.locations import location, open_repository
    from faceaudit.gallery.repository import SCRUB_PENDING, complete_scrub

    repo = open_repository(args.db)
    try:
        pending = repo.read_meta().get(SCRUB_PENDING)
        done = complete_scrub(repo, vacuum=args.vacuum, wait_s=max(0.0, args.wait))
    finally:
        repo.close()
    where = location(args.db)  # a database URL without its password
    if not done:
        held = (  # what keeps the erased bytes: a PostgreSQL snapshot, or an SQLite reader of the WAL
            f"a transaction open on {where} that sees the erased rows; their bytes (pending since {pending}) stay "
            "in the table files. End it"
            if is_pg_url(args.db)
            else f"{where} open; erased bytes (pending since {pending}) stay in its write-ahead log. Close it"
        )
        print(f"faceaudit: another process still has {held} and run this again.", file=sys.stderr)
        return 1
    what = f"pending since {pending}" if pending else "nothing was pending"
    print(f"{where}: checkpoint complete, erased bytes are gone from the files ({what})", file=sys.stderr)
    return 0


def cmd_expire(args: argparse.Namespace) -> int:
    from faceaudit.gallery.values import os_user

    with _open(args) as gallery:
        erased = gallery.expire(args.as_of, operator=args.operator or os_user(), scrub=False)
        print(
            f"{len(erased)} subject(s) with expired consent erased"
            + (f": {', '.join(erased)}" if erased else ""),
            file=sys.stderr,
        )
        if erased:
            _scrub(gallery, args.vacuum)
    return 0
