"""Where an image's time goes, and the SFace variants tried for batched embedding (issue 22, item 2).

One thread throughout. Stages per image over ``--n`` LFW View-2 images (decode, YuNet, alignment + quality),
then SFace per face at batch sizes 1, 16 and 32 with OpenVINO's LATENCY and THROUGHPUT hints, in today's
precision (the default: bf16 where the CPU has it, else f32), and, with ``--int8``, SFace quantised to int8 by
NNCF (``pip install nncf``; calibrated on ``--calibration`` FairFace images, not on LFW). Each variant's
templates are compared with today's (cosine, over the same LFW crops).

    python benchmarks/embed_variants.py --lfw ../shared/datasets/lfw
    python benchmarks/embed_variants.py --lfw ../shared/datasets/lfw --int8 \\
        --calibration ../shared/datasets/fairface540/images
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from _common import print_table, read_csv

from faceaudit.models.files import SFACE, verified_path
from faceaudit.models.forward import openvino_core, resolve_precision
from faceaudit.models.onnx_fix import folded_model_path
from faceaudit.pipeline.engine import Engine


def _blob(crops: np.ndarray) -> np.ndarray:
    """SFace's input: RGB, 0..255, N×3×112×112 (as ``OnnxEmbedder._blob`` makes it)."""
    return np.ascontiguousarray(crops[..., ::-1].astype(np.float32).transpose(0, 3, 1, 2))


def stages(engine: Engine, paths: list[str]) -> tuple[dict[str, float], np.ndarray]:
    """ms per image for decode, detect and align + quality; and the aligned crops."""
    for p in paths[:4]:
        engine.template(p)
    spent = {"decode": 0.0, "YuNet detect": 0.0, "align + quality": 0.0}
    crops = []
    for p in paths:
        t0 = time.perf_counter()
        image = engine.load(p)
        t1 = time.perf_counter()
        engine._faces(image)
        t2 = time.perf_counter()
        crops.append(engine.prepare(image)[0])  # detects again: its detection time is taken off below
        t3 = time.perf_counter()
        spent["decode"] += t1 - t0
        spent["YuNet detect"] += t2 - t1
        spent["align + quality"] += (t3 - t2) - (t2 - t1)
    return {k: 1000 * v / len(paths) for k, v in spent.items()}, np.stack(crops)


def sface_variant(
    model, crops: np.ndarray, precision: str, hint: str, batch: int
) -> tuple[float, np.ndarray]:
    """ms per face at ``batch`` (median of three passes) and the L2-normalised templates of ``crops``."""
    model = model.clone()
    model.reshape({model.inputs[0]: [-1, 3, 112, 112]})
    config = {
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": hint,
        "ENABLE_CPU_PINNING": False,
        "INFERENCE_NUM_THREADS": 1,
    }
    request = openvino_core().compile_model(model, "CPU", config).create_infer_request()
    out = [np.array(request.infer({0: _blob(crops[i : i + 16])})[0]) for i in range(0, len(crops), 16)]
    vecs = np.concatenate(out).reshape(len(crops), -1)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    n = max(1, min(len(crops), 96) // batch) * batch
    request.infer({0: _blob(crops[:batch])})
    passes = []
    for _ in range(3):
        t0, faces = time.perf_counter(), 0
        for i in range(0, n, batch):
            faces += len(request.infer({0: _blob(crops[i : i + batch])})[0])
        passes.append(1000 * (time.perf_counter() - t0) / faces)
    return float(np.median(passes)), vecs


def int8_model(model, calibration: Path, engine: Engine, n: int, preset: str):
    """SFace quantised by NNCF (weights and activations in int8), calibrated on faces from ``calibration``."""
    import nncf

    files = sorted(p for p in calibration.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
    crops = []
    for p in files:
        try:
            crops.append(engine.prepare(engine.load(str(p)))[0])
        except Exception:  # an image without a face calibrates nothing
            continue
    dataset = nncf.Dataset(crops, lambda c: _blob(c[None]))
    return nncf.quantize(
        model, dataset, subset_size=len(crops), preset=getattr(nncf.QuantizationPreset, preset)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--n", type=int, default=200, help="LFW images profiled and embedded")
    ap.add_argument("--int8", action="store_true", help="also SFace quantised to int8 with NNCF")
    ap.add_argument("--calibration", type=Path, default=Path("../shared/datasets/fairface540/images"))
    ap.add_argument("--calibration-images", type=int, default=300)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows = read_csv(args.lfw / "protocol" / "view2_pairs.csv")
    rel = sorted({r["path_a"] for r in rows} | {r["path_b"] for r in rows})[: args.n]
    engine = Engine("sface", threads=1)
    spent, crops = stages(engine, [str(args.lfw / p) for p in rel])
    print(
        f"\n{engine.runtime}; {len(rel)} LFW images, 1 thread; CPU capabilities (OpenVINO): "
        f"{', '.join(openvino_core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))}\n"
    )
    print_table(["stage", "ms/image"], [[k, f"{v:.2f}"] for k, v in spent.items()])
    today = resolve_precision()
    graph = openvino_core().read_model(str(folded_model_path(verified_path(SFACE))))
    variants = [(f"SFace {today} (today)", graph, today)]
    if args.int8:
        for preset in ("PERFORMANCE", "MIXED"):
            q = int8_model(graph, args.calibration, engine, args.calibration_images, preset)
            variants.append((f"SFace int8 (NNCF, {preset.lower()})", q, "f32"))
    reference = None
    table = []
    for name, model, precision in variants:
        for hint in ("LATENCY", "THROUGHPUT") if reference is None else ("LATENCY",):
            for batch in (1, 16, 32):
                ms, vecs = sface_variant(model, crops, precision, hint, batch)
                reference = vecs if reference is None else reference
                cos = (vecs * reference).sum(axis=1)
                table.append([name, hint, batch, f"{ms:.1f}", f"{cos.min():.4f}", f"{cos.mean():.5f}"])
    print()
    print_table(
        ["variant", "hint", "batch", "ms/face", "cosine to today (min)", "cosine to today (mean)"], table
    )


if __name__ == "__main__":
    main()
