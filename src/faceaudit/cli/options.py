"""Options and helpers shared by the recognition commands (and the gallery and audit commands)."""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable

from faceaudit.errors import FaceAuditError, InputError, UsageError
from faceaudit.models import BACKEND_NAMES, DEFAULT_MODEL
from faceaudit.models.base import check_threshold
from faceaudit.types import DEFAULT_POLICY, SELECTION_POLICIES


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--model, --policy, --accept-model-license and the options of a user's ONNX embedder."""
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
    p.add_argument(
        "--accept-model-license",
        metavar="USE",
        default=None,
        help="confirm the use a restrictively licensed model allows (arcface-mbf: research)",
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


def threshold_value(text: str) -> float:
    """argparse type: a cosine threshold within [-1, 1]."""
    try:
        return check_threshold(text, "--threshold")
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_threshold_option(p: argparse.ArgumentParser) -> None:
    """--threshold: the cosine threshold, overriding the model's calibrated default."""
    p.add_argument(
        "--threshold",
        type=threshold_value,
        default=None,
        help="cosine threshold in [-1, 1] (default: the model's calibrated one)",
    )


def model_options(args: argparse.Namespace) -> dict:
    """Keyword options for Engine/load_backend from parsed arguments."""
    from faceaudit.models.registry import resolve

    opts: dict = {}
    entry, _ = resolve(args.model)
    if getattr(args, "accept_model_license", None):
        if not entry.licence_gate:
            raise UsageError(f"--accept-model-license: model {args.model!r} needs no licence acceptance")
        opts["accept_license"] = args.accept_model_license
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


def json_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Under --json, an error is also a JSON object on stdout (``error``, ``kind``, ``exit_code``, ``path``)."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except FaceAuditError as exc:
            if getattr(args, "json", False):
                print(json.dumps(error_object(exc)), flush=True)
            raise

    return run


def error_object(exc: FaceAuditError) -> dict:
    """The JSON shape of an error: what happened, its class, the exit code, and the file when there is one."""
    out = {"error": str(exc), "kind": type(exc).__name__, "exit_code": exc.exit_code}
    if isinstance(exc, InputError):
        out["path"] = exc.path
    return out
