"""``faceaudit compare KNOWN UNKNOWN``: face_recognition's ``known/ unknown/`` workflow, keeping nothing.

Names come from the known images' file names, or from their sub-folders when KNOWN holds folders (several
images per person; a person's similarity is their best image's). For each unknown image the best matches are
printed with their similarity and the decision at the model's threshold. Nothing is stored and nothing is
logged: it is a local comparison of files the user holds. A lasting set of people belongs in a gallery, which
records consent and writes every search to the ledger.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from faceaudit.errors import InputError, UsageError

CSV_COLUMNS = ("unknown", "status", "rank", "name", "similarity", "match", "threshold", "known_path")


def register(sub: argparse._SubParsersAction) -> None:
    from faceaudit.cli.options import add_model_options, add_threshold_option

    p = sub.add_parser(
        "compare",
        help="compare unknown images with known ones (names from file or folder names); keeps nothing",
        description=(__doc__ or "").replace("``", ""),  # the docstring's reStructuredText, read as text
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("known", help="a folder of known people (files named after them, or one sub-folder each)")
    p.add_argument("unknown", nargs="+", help="image files, folders (recursive), or - for paths on stdin")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="CSV: one row per unknown image and match")
    out.add_argument("--json", action="store_true", help="one JSON line per unknown image")
    p.add_argument(
        "--top-k", type=int, default=1, metavar="K", help="best matches shown per image (default 1)"
    )
    add_threshold_option(p)
    add_model_options(p)
    p.set_defaults(func=cmd_compare)


def _templates(engine, paths: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """Templates of the images that gave one, their paths, and a status per input path."""
    vectors, kept, status = [], [], []
    for path in paths:
        try:
            vectors.append(engine.template(path).vector)
            kept.append(path)
            status.append("ok")
        except InputError as exc:
            status.append("no_face" if exc.reason == "no face found" else f"error: {exc.reason}")
    matrix = np.stack(vectors) if vectors else np.zeros((0, engine.dim), np.float32)
    return matrix, kept, status


def cmd_compare(args: argparse.Namespace) -> int:
    from faceaudit.cli.inputs import expand_images, named_images
    from faceaudit.cli.options import json_errors, make_engine

    if args.top_k < 1:
        raise UsageError("--top-k must be at least 1")

    @json_errors
    def run(args: argparse.Namespace) -> int:
        known = named_images(args.known)
        unknown = expand_images(args.unknown)
        engine = make_engine(args)
        k_vecs, k_paths, k_status = _templates(engine, [p for _, p in known])
        names_of = dict((p, n) for n, p in known)
        for (_, path), status in zip(known, k_status, strict=True):
            if status != "ok":
                print(f"faceaudit: known image {path} skipped: {status}", file=sys.stderr)
        if not k_paths:
            raise InputError(args.known, "no known image gave a face template")
        people = sorted({names_of[p] for p in k_paths})
        person = np.array([people.index(names_of[p]) for p in k_paths])
        writer = _writer(args)
        for path in unknown:
            u_vec, _, (status,) = _templates(engine, [path])
            if status != "ok":
                _emit(args, writer, path, status, [], engine.threshold)
                continue
            sims = engine.compare(u_vec, k_vecs)[0]
            best = np.full(len(people), -np.inf, np.float32)
            best_path: list[str] = [""] * len(people)
            for j, s in enumerate(sims):  # a person's similarity is that of their best image
                if s > best[person[j]]:
                    best[person[j]], best_path[person[j]] = s, k_paths[j]
            order = np.argsort(-best, kind="stable")[: args.top_k]
            matches = [(people[i], float(best[i]), best_path[i]) for i in order]
            _emit(args, writer, path, "ok", matches, engine.threshold)
        return 0

    return run(args)


def _writer(args: argparse.Namespace):
    if not args.csv:
        return None
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    return writer


def _emit(args, writer, path: str, status: str, matches: list[tuple[str, float, str]], thr: float) -> None:
    if writer is not None:
        if not matches:
            writer.writerow([path, status, "", "", "", "", thr, ""])
        for rank, (name, sim, known) in enumerate(matches, start=1):
            writer.writerow([path, status, rank, name, f"{sim:.6f}", int(sim >= thr), thr, known])
        return
    if args.json:
        rows = [
            {"name": n, "similarity": round(s, 6), "match": s >= thr, "known_path": k} for n, s, k in matches
        ]
        print(json.dumps({"unknown": path, "status": status, "threshold": thr, "matches": rows}), flush=True)
        return
    if not matches:
        print(f"{path}: {status}", flush=True)
        return
    shown = "; ".join(f"{n} {s:.4f} {'MATCH' if s >= thr else 'no match'}" for n, s, _ in matches)
    print(f"{path}: {shown}", flush=True)
