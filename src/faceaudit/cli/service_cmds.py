"""Service commands: ``serve`` (the HTTP API) and ``keys create/list/revoke`` (its API keys)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from faceaudit.cli.engine_cmds import add_model_options, add_threshold_option, model_options
from faceaudit.errors import UsageError

DEFAULT_DB = "faceaudit.db"


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=DEFAULT_DB,
        help=f"gallery database: a file (default {DEFAULT_DB}) or postgresql://user@host/dbname",
    )
    p.add_argument(
        "--key-file",
        default=None,
        help="gallery key file, used when FACEAUDIT_KEY is unset (default: DB.key)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the gallery as an authenticated HTTP API (FastAPI + uvicorn) with its web console",
        description="Serve the gallery: the API under /v1/ (Authorization: Bearer <key>), its docs at /docs, "
        "and the web console at /ui/ (sign in with a key). The addresses are printed at start.",
    )
    _db(p)
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--ssl-keyfile", default=None, help="TLS private key (PEM), passed to uvicorn")
    p.add_argument("--ssl-certfile", default=None, help="TLS certificate chain (PEM), passed to uvicorn")
    p.add_argument("--ssl-keyfile-password", default=None, help="password of the TLS key, if any")
    p.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="behind a reverse proxy: the proxy addresses whose X-Forwarded-* headers are trusted "
        "(uvicorn's option; default 127.0.0.1)",
    )
    p.add_argument(
        "--root-path", default="", help="behind a reverse proxy: the path prefix it serves us under"
    )
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="request body limit in MB (default 20)")
    p.add_argument("--workers", type=int, default=None, help="inference threads (default: one per core)")
    p.add_argument(
        "--queue",
        type=int,
        default=None,
        help="requests that may wait for a worker before 503 (default: workers)",
    )
    p.add_argument(
        "--rate-limit",
        default="600/min",
        help="default per-key rate limit, N/s, N/min or N/h (default 600/min)",
    )
    p.add_argument(
        "--anonymous-rate-limit",
        default="60/min",
        help="per client address: requests without a live key refused with 401 before 429 (default 60/min)",
    )
    p.add_argument(
        "--audit-data",
        default=None,
        metavar="DIR",
        help="a folder of manifest CSVs (with their images) that auditors may audit by name; "
        "default: none, only uploaded scores CSVs",
    )
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    add_threshold_option(p)
    add_model_options(p)
    p.set_defaults(func=cmd_serve)

    k = sub.add_parser("keys", help="API keys of the service: create, list, revoke")
    ksub = k.add_subparsers(dest="keys_command", metavar="ACTION")
    ksub.required = True
    p = ksub.add_parser("create", help="create a key; it is printed once, on the last line of stdout")
    _db(p)
    p.add_argument("--principal", required=True, help="the person or system the key belongs to")
    p.add_argument(
        "--role",
        required=True,
        help="role(s), comma-separated: enroller, searcher, reviewer, auditor, dpo, admin",
    )
    p.add_argument("--expires", default=None, metavar="YYYY-MM-DD", help="the day the key stops working")
    p.add_argument("--rate-limit", default=None, help="this key's rate limit (N/s, N/min, N/h)")
    p.add_argument("--operator", default=None, help="who creates it (default: the OS user)")
    p.set_defaults(func=cmd_keys_create)
    p = ksub.add_parser("list", help="list keys (never the keys themselves)")
    _db(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_list)
    p = ksub.add_parser("revoke", help="revoke a key (effective on the server's next request)")
    p.add_argument("key_id", metavar="KEY_ID")
    _db(p)
    p.add_argument("--operator", default=None, help="who revokes it (default: the OS user)")
    p.set_defaults(func=cmd_keys_revoke)


def local_actor(operator: str | None):
    """Unauthenticated local use: the typed operator (default: the OS user); the OS user is recorded beside it."""
    from faceaudit.gallery.values import Actor, os_user

    return Actor.local(operator if operator and operator.strip() else os_user())


def _store(args: argparse.Namespace):
    from faceaudit.operations.keys import KeyHasher
    from faceaudit.operations.records import open_service_store

    store = open_service_store(args.db)
    try:
        hasher = KeyHasher.for_gallery(args.db, args.key_file)
    except BaseException:
        store.close()
        raise
    return store, hasher


def cmd_keys_create(args: argparse.Namespace) -> int:
    from faceaudit.gallery.records import utc_today

    store, hasher = _store(args)
    try:
        new = hasher.create(
            store,
            principal=args.principal,
            roles=args.role,
            actor=local_actor(args.operator),
            expires=args.expires,
            rate_limit=args.rate_limit,
            today=utc_today(),
        )
    finally:
        store.close()
    r = new.record
    print(
        f"key {r.key_id} for {r.principal} ({', '.join(r.roles)})"
        + (f", expires {r.expires}" if r.expires else "")
        + f"; ledger entry {new.ledger_entry.seq}. It is shown once: keep it now.",
        file=sys.stderr,
    )
    print(new.key)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from faceaudit.operations.records import open_service_store

    store = open_service_store(args.db)
    try:
        keys = [k.public() for k in store.list_keys()]
    finally:
        store.close()
    if args.json:
        print(json.dumps(keys, indent=2))
        return 0
    for k in keys:
        state = f"revoked {k['revoked_at']}" if k["revoked_at"] else f"expires {k['expires'] or 'never'}"
        print(f"{k['key_id']}  {k['principal']:<20} {','.join(k['roles']):<28} {state}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from faceaudit.operations.records import open_service_store

    store = open_service_store(args.db)
    try:
        entry = store.revoke_key(args.key_id, actor=local_actor(args.operator))
    finally:
        store.close()
    if entry is None:
        raise UsageError(
            f"no live key {args.key_id!r} (unknown or already revoked; see 'faceaudit keys list')"
        )
    print(f"revoked key {args.key_id}; ledger entry {entry.seq}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from faceaudit.service import ServiceConfig, create_app
    from faceaudit.service.edge import log_config

    if args.max_upload_mb <= 0:
        raise UsageError("--max-upload-mb must be positive")
    if bool(args.ssl_keyfile) != bool(args.ssl_certfile):
        raise UsageError("TLS needs both --ssl-keyfile and --ssl-certfile")
    config = ServiceConfig(
        db=args.db,
        key_file=args.key_file,
        model=args.model,
        policy=args.policy,
        threshold=args.threshold,
        model_options=model_options(args),
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        workers=args.workers,
        queue=args.queue,
        rate_limit=args.rate_limit,
        anonymous_rate_limit=args.anonymous_rate_limit,
        audit_data=args.audit_data,
    )
    if args.audit_data is not None and not os.path.isdir(args.audit_data):
        raise UsageError(f"--audit-data {args.audit_data}: no such folder")
    app = create_app(config)
    service = app.state.service
    scheme = "https" if args.ssl_certfile else "http"
    base = f"{scheme}://{args.host}:{args.port}{args.root_path.rstrip('/')}"
    print(
        f"faceaudit serve: gallery {service.gallery.gallery_id} ({service.n_templates} templates, "
        f"model {service.engine.model_id}, {service.pool.workers} inference workers) on "
        f"{scheme}://{args.host}:{args.port}\n"
        f"  API      {base}/v1/\n  API docs {base}/docs\n  console  {base}/ui/",
        file=sys.stderr,
        flush=True,
    )
    extra = {}
    if args.forwarded_allow_ips:
        extra["forwarded_allow_ips"] = args.forwarded_allow_ips
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile_password=args.ssl_keyfile_password,
        root_path=args.root_path,
        proxy_headers=True,
        log_level=args.log_level,
        log_config=log_config(args.log_level),
        access_log=False,  # faceaudit.access logs route templates, never refs, names or query strings
        server_header=False,
        **extra,
    )
    return 0
