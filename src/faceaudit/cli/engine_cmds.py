"""Recognition commands: detect, verify, embed, compare, models."""

from __future__ import annotations

import argparse
import json
import os
import sys

from faceaudit.cli.options import (
    add_model_options,
    add_threshold_option,
    error_object,
    json_errors,
    make_engine,
    model_options,
    threshold_value,
)
from faceaudit.errors import InputError, UsageError

__all__ = [
    "add_model_options",
    "add_threshold_option",
    "error_object",
    "json_errors",
    "make_engine",
    "model_options",
    "register",
    "threshold_value",
]


def register(sub: argparse._SubParsersAction) -> None:
    from faceaudit.cli import compare_cmds

    p = sub.add_parser("detect", help="find every face in images (files, folders, or - for paths on stdin)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders (recursive), or -")
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--json",
        action="store_true",
        help="JSON: a list of faces for one image; one JSON line per image for several",
    )
    out.add_argument("--csv", action="store_true", help="CSV: one row per face (and per image without one)")
    p.add_argument(
        "--landmarks", type=int, choices=(5, 68), default=5, help="68: add dlib's 68-point dict (dlib models)"
    )
    add_model_options(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("verify", help="1:1 verification of two images")
    p.add_argument("image_a")
    p.add_argument("image_b")
    add_threshold_option(p)
    p.add_argument("--json", action="store_true", help="print JSON (errors too, on stdout)")
    add_model_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "embed", help="embed images (a CSV manifest, files, folders or -) into an .npz of templates"
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="a CSV manifest with a 'path' column, or image files, folders (recursive), or -",
    )
    p.add_argument(
        "--root", default=None, help="folder a manifest's relative paths are relative to (default: here)"
    )
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="embed on a Dask cluster: a scheduler address (tcp://host:8786) or local:N (N local workers); "
        "each worker loads the model once, images travel with the tasks",
    )
    add_model_options(p)
    p.set_defaults(func=cmd_embed)

    compare_cmds.register(sub)

    p = sub.add_parser("models", help="list the backends, their files, SHA-256, licences and thresholds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)


DETECT_CSV_COLUMNS = (
    "path", "status", "n_faces", "face", "chosen", "x", "y", "w", "h", "score",
    "inter_eye_px", "sharpness", "yaw",
)  # fmt: skip


@json_errors
def cmd_detect(args: argparse.Namespace) -> int:
    from faceaudit.cli.inputs import expand_images

    paths = expand_images(args.images)
    engine = make_engine(args)
    if args.json and len(args.images) == 1 and os.path.isfile(args.images[0]):
        print(json.dumps([f.as_dict() for f in engine.detect(paths[0], landmarks=args.landmarks)]))
        return 0
    writer = None
    if args.csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(DETECT_CSV_COLUMNS)
    failed = 0
    for path in paths:
        try:
            rows = [f.as_dict() for f in engine.detect(path, landmarks=args.landmarks)]
        except InputError as exc:
            if len(paths) == 1:
                raise
            failed += 1
            if args.json:
                print(json.dumps({"path": path, **error_object(exc)}), flush=True)
            elif writer:
                writer.writerow([path, f"error: {exc.reason}", 0, *[""] * 10])
            else:
                print(f"{path}: error: {exc.reason}", flush=True)
            continue
        if args.json:
            print(json.dumps({"path": path, "n_faces": len(rows), "policy": engine.policy, "faces": rows}))
        elif writer:
            _detect_csv_rows(writer, path, rows)
        else:
            _detect_text(path, rows, engine.policy)
    if failed:
        print(f"faceaudit: {failed} of {len(paths)} images could not be read", file=sys.stderr)
    return 3 if failed == len(paths) else 0


def _detect_csv_rows(writer, path: str, rows: list[dict]) -> None:
    if not rows:
        writer.writerow([path, "no_face", 0, *[""] * 10])
    for i, r in enumerate(rows):
        q = r["quality"]
        writer.writerow(
            [
                path,
                "ok",
                len(rows),
                i,
                int(r["chosen"]),
                *r["box"],
                r["score"],
                q["inter_eye_px"],
                q["sharpness"],
                q["yaw"],
            ]  # fmt: skip
        )


def _detect_text(path: str, rows: list[dict], policy: str) -> None:
    print(f"{path}: {len(rows)} face(s)")
    for i, r in enumerate(rows):
        x, y, w, h = r["box"]
        q = r["quality"]
        mark = f"  <- chosen ({policy})" if r["chosen"] and len(rows) > 1 else ""
        print(
            f"  [{i}] box=({x:.0f},{y:.0f},{w:.0f},{h:.0f}) score={r['score']:.3f} "
            f"inter_eye={q['inter_eye_px']:.1f}px sharpness={q['sharpness']:.0f} yaw={q['yaw']:+.2f}{mark}"
        )


@json_errors
def cmd_verify(args: argparse.Namespace) -> int:
    result = make_engine(args).verify(args.image_a, args.image_b)
    if args.json:
        out = result.as_dict()
        for image, path in zip(out.get("images", []), (args.image_a, args.image_b), strict=True):
            image["path"] = path
        print(json.dumps(out))
    else:
        verdict = "MATCH" if result.match else "no match"
        print(
            f"{verdict}: similarity {result.similarity:.4f} vs threshold {result.threshold:.4f} ({result.model})"
        )
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from pathlib import Path

    from faceaudit.cli.inputs import expand_images
    from faceaudit.cli.progress import progress_bar
    from faceaudit.pipeline.batch import embed_paths, read_manifest_paths

    if Path(args.out).is_dir():  # before any work, and before a *.tmp.npz is left beside it
        raise InputError(args.out, "--out is a directory; give a .npz file name")
    manifest = len(args.inputs) == 1 and args.inputs[0].lower().endswith(".csv")
    if manifest:
        paths = read_manifest_paths(args.inputs[0])
    else:
        if args.root is not None:
            raise UsageError("--root applies to a CSV manifest only; image paths are used as given")
        paths = expand_images(args.inputs)
    with progress_bar(len(paths), "embedding") as advance:
        if args.dask:
            from faceaudit.pipeline.dask_embed import embed_paths_dask

            result = embed_paths_dask(
                paths,
                args.root or ".",
                address=args.dask,
                model=args.model,
                policy=args.policy,
                progress=advance,
                **model_options(args),
            )
        else:
            result = embed_paths(
                paths,
                args.root or ".",
                model=args.model,
                policy=args.policy,
                workers=args.workers,
                progress=advance,
                **model_options(args),
            )
    result.save(args.out)
    n_ok = int(result.ok.sum())
    n_noface = sum(s == "no_face" for s in result.status)
    n_err = len(paths) - n_ok - n_noface
    multi = int((result.n_faces > 1).sum())
    print(
        f"{args.out}: {len(paths)} images, {n_ok} templates, {n_noface} without a face, {n_err} unreadable; "
        f"{multi} held several faces (policy {result.policy}); model {result.model_id} ({result.runtime})",
        file=sys.stderr,
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from faceaudit.models import describe_models

    rows = describe_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['name']}: model {r['model_id']}, detector {r['detector']}, dim {r['dim']}, "
            f"default threshold {r['default_threshold']} ({r['metric']}), runtime {r['runtime']}"
            + (f"; on this machine: {r['runtime_here']}" if "runtime_here" in r else "")
        )
        if "licence" in r:
            print(f"    LICENCE: {r['licence']}")
        for f in r["files"]:
            missing = f["sha256"].startswith(("unavailable", "missing"))
            flag = "" if f["verified"] else ("  (not installed)" if missing else "  MISMATCH")
            print(f"    {f['file']}\n      sha256 {f['sha256']}{flag}\n      licence {f['licence']}")
    return 0
