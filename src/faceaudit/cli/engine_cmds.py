"""Recognition commands: detect, verify, embed, models."""

from __future__ import annotations

import argparse
import json
import sys

from faceaudit.models import BACKEND_NAMES, DEFAULT_MODEL
from faceaudit.pipeline.select import DEFAULT_POLICY
from faceaudit.types import SELECTION_POLICIES


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model, --policy and the options of a user's ONNX embedder."""
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"backend: {', '.join(BACKEND_NAMES)} (default {DEFAULT_MODEL})",
    )
    p.add_argument(
        "--policy",
        default=DEFAULT_POLICY,
        choices=SELECTION_POLICIES,
        help=f"which face to use when an image holds several (default {DEFAULT_POLICY})",
    )
    g = p.add_argument_group("own ONNX embedder (--model onnx:PATH)")
    g.add_argument("--onnx-mean", type=float, default=None, help="pixel mean subtracted (default 127.5)")
    g.add_argument("--onnx-std", type=float, default=None, help="pixel scale divided by (default 127.5)")
    g.add_argument(
        "--onnx-channels", choices=("rgb", "bgr"), default=None, help="channel order (default rgb)"
    )
    g.add_argument(
        "--onnx-runtime",
        choices=("onnxruntime", "openvino", "opencv"),
        default=None,
        help="runtime for the model (default onnxruntime; opencv needs --onnx-size)",
    )
    g.add_argument(
        "--onnx-size",
        type=int,
        nargs=2,
        metavar=("W", "H"),
        default=None,
        help="input size when the model does not fix it",
    )


def add_threshold_option(p: argparse.ArgumentParser) -> None:
    """--threshold: the cosine threshold, overriding the model's calibrated default."""
    p.add_argument(
        "--threshold", type=float, default=None, help="cosine threshold (default: the model's calibrated one)"
    )


def model_options(args: argparse.Namespace) -> dict:
    """Keyword options for Engine/load_backend from parsed arguments."""
    opts: dict = {}
    if not args.model.startswith("onnx:"):
        return opts
    if args.onnx_mean is not None:
        opts["mean"] = args.onnx_mean
    if args.onnx_std is not None:
        opts["std"] = args.onnx_std
    if args.onnx_channels is not None:
        opts["channels"] = args.onnx_channels
    if args.onnx_runtime is not None:
        opts["runtime"] = args.onnx_runtime
    if args.onnx_size is not None:
        opts["input_size"] = tuple(args.onnx_size)
    if getattr(args, "threshold", None) is not None:
        opts["default_threshold"] = args.threshold
    return opts


def make_engine(args: argparse.Namespace):
    from faceaudit.pipeline.engine import Engine

    return Engine(
        args.model, policy=args.policy, threshold=getattr(args, "threshold", None), **model_options(args)
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="find every face in an image")
    p.add_argument("image")
    p.add_argument("--json", action="store_true", help="print a JSON list of faces")
    add_model_options(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("verify", help="1:1 verification of two images")
    p.add_argument("image_a")
    p.add_argument("image_b")
    add_threshold_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("embed", help="embed every image of a manifest into an .npz of templates")
    p.add_argument("manifest", help="CSV with a 'path' column")
    p.add_argument("--root", required=True, help="folder the manifest's paths are relative to")
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

    p = sub.add_parser("models", help="list the backends, their files, SHA-256, licences and thresholds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)


def cmd_detect(args: argparse.Namespace) -> int:
    faces = make_engine(args).detect(args.image)
    rows = [f.as_dict() for f in faces]
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{args.image}: {len(rows)} face(s)")
        for i, r in enumerate(rows):
            x, y, w, h = r["box"]
            q = r["quality"]
            print(
                f"  [{i}] box=({x:.0f},{y:.0f},{w:.0f},{h:.0f}) score={r['score']:.3f} "
                f"inter_eye={q['inter_eye_px']:.1f}px sharpness={q['sharpness']:.0f} yaw={q['yaw']:+.2f}"
            )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    result = make_engine(args).verify(args.image_a, args.image_b)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        verdict = "MATCH" if result.match else "no match"
        print(
            f"{verdict}: similarity {result.similarity:.4f} vs threshold {result.threshold:.4f} ({result.model})"
        )
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from faceaudit.cli.progress import progress_bar
    from faceaudit.pipeline.batch import embed_paths, read_manifest_paths

    paths = read_manifest_paths(args.manifest)
    with progress_bar(len(paths), "embedding") as advance:
        if args.dask:
            from faceaudit.pipeline.dask_embed import embed_paths_dask

            result = embed_paths_dask(
                paths,
                args.root,
                address=args.dask,
                model=args.model,
                policy=args.policy,
                progress=advance,
                **model_options(args),
            )
        else:
            result = embed_paths(
                paths,
                args.root,
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
        for f in r["files"]:
            print(
                f"    {f['file']}\n      sha256 {f['sha256']}{'' if f['verified'] else '  MISMATCH'}\n      licence {f['licence']}"
            )
    return 0
