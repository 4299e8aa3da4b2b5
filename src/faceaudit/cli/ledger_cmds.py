"""Ledger commands: ledger verify, anchor, export. They need no gallery key."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from faceaudit.cli.gallery_cmds import OPERATOR, _db_options, _os_user


def register(sub: argparse._SubParsersAction) -> None:
    led = sub.add_parser("ledger", help="the accountability ledger: verify, anchor, export")
    lsub = led.add_subparsers(dest="ledger_command", metavar="ACTION")
    lsub.required = True
    p = lsub.add_parser(
        "verify", help="check the hash chain; names the first entry modified/deleted/inserted/reordered"
    )
    p.add_argument(
        "--anchor",
        default=None,
        metavar="SEQ:HASH",
        help="a head from 'ledger anchor' (detects truncation and a rebuilt chain; a bare HASH also works)",
    )
    _db_options(p, key=False)
    p.set_defaults(func=cmd_ledger_verify)
    p = lsub.add_parser("anchor", help="print the head as SEQ:HASH, to keep elsewhere")
    _db_options(p, key=False)
    p.set_defaults(func=cmd_ledger_anchor)
    p = lsub.add_parser("export", help="export entries (hashes included) as JSON lines; logged")
    p.add_argument(
        "--since", default="0", help="entries after this seq number, or from this UTC date/time (ISO 8601)"
    )
    p.add_argument("--format", choices=("jsonl",), default="jsonl")
    p.add_argument("--out", default=None, help="output file (default stdout)")
    p.add_argument("--operator", default=None, help=f"who exports (default: the OS user); {OPERATOR}")
    _db_options(p, key=False)
    p.set_defaults(func=cmd_ledger_export)


# --- ledger -------------------------------------------------------------------------------------------------------


def _ledger(args: argparse.Namespace):
    from faceaudit.gallery import GalleryLedger

    return GalleryLedger(args.db)


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    with _ledger(args) as gl:
        report = gl.ledger.verify(anchor=args.anchor)
    print(report.message())
    if report.anchor_checked:
        print(f"the anchored head is in the chain (head now entry {report.head_seq})", file=sys.stderr)
    return 0


def cmd_ledger_anchor(args: argparse.Namespace) -> int:
    with _ledger(args) as gl:
        seq, head = gl.ledger.head_hash()
    print(f"{seq}:{head}")
    print(
        f"head of {seq} entries (SEQ:HASH); keep it elsewhere and check with "
        "'faceaudit ledger verify --anchor SEQ:HASH'",
        file=sys.stderr,
    )
    return 0


def _open_output(path: str):
    """A temporary file beside ``path`` (renamed onto it once the export is logged); InputError naming ``path``."""
    import tempfile

    from faceaudit.errors import InputError

    target = Path(path)
    if target.is_dir():
        raise InputError(target, "--out is a directory; give a file name")
    if not target.parent.is_dir():
        raise InputError(target, f"--out: the folder {str(target.parent)!r} does not exist")
    try:
        return tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False
        )
    except OSError as exc:
        raise InputError(target, f"--out cannot be written ({exc.strerror or exc})") from None


def cmd_ledger_export(args: argparse.Namespace) -> int:
    """Write the entries first (to a temporary file, or stdout), then log the export; a failed write logs
    nothing and leaves no file."""
    since: int | str = int(args.since) if args.since.strip().isdigit() else args.since.strip()
    out = _open_output(args.out) if args.out else sys.stdout

    def write(rows: list[dict]) -> None:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
        out.flush()
        if args.out:
            os.fsync(out.fileno())

    try:
        with _ledger(args) as gl:
            rows, entry = gl.export(args.operator or _os_user(), since=since, fmt=args.format, write=write)
        if args.out:
            out.close()
            os.replace(out.name, args.out)
    except BaseException:
        if args.out:
            out.close()
            Path(out.name).unlink(missing_ok=True)
        raise
    print(f"exported {len(rows)} entries; logged as entry {entry.seq}", file=sys.stderr)
    return 0
