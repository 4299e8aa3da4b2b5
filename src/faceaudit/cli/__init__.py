"""The ``faceaudit`` command line. Exit codes: 0 success, 1 failure, 2 usage error, 3 bad input."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from faceaudit.errors import FaceAuditError

_COMMAND_MODULES = (
    "faceaudit.cli.engine_cmds",
    "faceaudit.cli.audit_cmds",
    "faceaudit.cli.gallery_cmds",
    "faceaudit.cli.ledger_cmds",
    "faceaudit.cli.service_cmds",
    "faceaudit.cli.monitor_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    import importlib

    from faceaudit import __version__

    parser = argparse.ArgumentParser(
        prog="faceaudit",
        description="Face recognition that can be audited: recognise, audit for demographic differentials, account.",
    )
    parser.add_argument("--version", action="version", version=f"faceaudit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except FaceAuditError as exc:
        print(f"faceaudit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("faceaudit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
