"""``faceaudit monitor``: demographic differentials measured in operation, against a pre-deployment audit."""

from __future__ import annotations

import argparse
import json
import os
import sys

from faceaudit.cli.gallery_cmds import _db_options, _open


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="post-market monitoring: false candidates and misses per declared group, from reviewed searches",
    )
    _db_options(p)
    p.add_argument(
        "--operator", default=None, help="who runs the monitor (logged; default: $FACEAUDIT_OPERATOR)"
    )
    p.add_argument("--attribute", default="sex", help="the declared attribute that forms the groups (sex)")
    p.add_argument(
        "--since", default=None, help="period start, YYYY-MM-DD or ISO time (default: first search)"
    )
    p.add_argument("--until", default=None, help="period end, exclusive (default: after the last search)")
    p.add_argument("--window-days", type=int, default=30, help="window length in days (30)")
    p.add_argument("--k", type=int, default=10, help="smallest group shown: fewer subjects, no figure (10)")
    p.add_argument(
        "--baseline", default=None, help="a signed pre-deployment audit.json (audit-identification)"
    )
    p.add_argument(
        "--baseline-key", default=None, help="Ed25519 public key (PEM) that must have signed --baseline"
    )
    p.add_argument("--out", default="monitor.json", help="where to write monitor.json (monitor.json)")
    p.add_argument("--html", default=None, help="also write the monitoring section as HTML here")
    p.add_argument("--sign-key", default=None, help="Ed25519 private key (PEM): sign monitor.json")
    p.add_argument("--json", action="store_true", help="print monitor.json instead of a summary")
    p.set_defaults(func=cmd_monitor)


def cmd_monitor(args: argparse.Namespace) -> int:
    from faceaudit.audit.monitor_report import render_html, summary_lines
    from faceaudit.audit.signing import sign
    from faceaudit.audit.verify import read_report, verify
    from faceaudit.gallery.values import Actor, os_user
    from faceaudit.operations.monitor import parse_when, run_monitor
    from faceaudit.operations.records import open_service_store

    actor = Actor.of(
        args.operator or os.environ.get("FACEAUDIT_OPERATOR") or os_user(), "the monitor needs --operator"
    )
    baseline = None
    if args.baseline is not None:
        baseline = read_report(args.baseline)
        if args.baseline_key is not None:
            verify(baseline, args.baseline_key)
    with _open(args) as gallery:
        store = open_service_store(args.db)
        try:
            doc = run_monitor(
                gallery,
                store,
                actor,
                attribute=args.attribute,
                since=parse_when(args.since, "--since"),
                until=parse_when(args.until, "--until"),
                window_days=args.window_days,
                k=args.k,
                baseline=baseline,
                baseline_source=os.path.basename(args.baseline) if args.baseline else "audit.json",
            )
        finally:
            store.close()
    if baseline is not None:
        doc["baseline"]["signature_checked"] = args.baseline_key is not None
    if args.sign_key:
        doc = sign(doc, args.sign_key)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.write("\n")
    if args.html:
        with open(args.html, "w", encoding="utf-8") as fh:
            fh.write(render_html(doc))
    if args.json:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        for line in summary_lines(doc):
            print(line)
        print(f"wrote {args.out}" + (f" and {args.html}" if args.html else ""))
    return 1 if doc["alerts"] else 0
