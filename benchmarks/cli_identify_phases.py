"""Where the time of one ``faceaudit identify`` goes: the steps of the CLI's call, one after another in one
process, with the index rebuilt from the gallery (open and decrypt every sealed template, then build) side by
side with the index loaded from the index file (``DB.index``). Steps run in sequence here, so their sum is more
than the CLI's wall time, where the file is read in a thread while the models load.

    PYTHONPATH=src python benchmarks/cli_identify_phases.py --workdir /tmp/sbench1m [--compile-models]

Uses the gallery and probes that ``benchmarks/service_load.py`` built in ``--workdir`` (key in gallery.db.key);
its CLI column writes the index file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/faceaudit-service-bench")
    ap.add_argument(
        "--compile-models",
        action="store_true",
        help="compile the OpenVINO models as before (do not load the compiled ones from the cache folder)",
    )
    args = ap.parse_args()
    work = Path(args.workdir)
    db, probe = work / "gallery.db", sorted((work / "probes").glob("*.jpg"))[0]
    steps: list[tuple[str, float]] = []
    t = time.perf_counter()

    def step(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        steps.append((name, now - t))
        t = now

    if args.compile_models:
        import faceaudit.models.forward as forward

        forward._keep_compiled_models = lambda core: None
    from faceaudit.gallery import Gallery
    from faceaudit.imaging import read_image
    from faceaudit.pipeline.engine import Engine

    step("import faceaudit.gallery, the engine, imaging")
    engine = Engine()
    step("engine start (detector and embedder loaded)")
    with Gallery(db, engine=engine, create=False) as g:
        step("gallery open (key check, schema)")
        live = g._live
        dim = engine.dim
        assert live.file is not None
        saved = live.file.load(g._repo, engine.model_id, g.index_kind)
        if saved is None:
            sys.exit(
                f"no valid index file at {live.file.path}: run benchmarks/service_load.py --cli-only first"
            )
        step(f"index file: read and decrypt {live.file.path.stat().st_size / 1e6:,.0f} MB")
        from faceaudit.gallery.index import TemplateIndex

        index = TemplateIndex.from_state(saved.dim, g.index_kind, saved.arrays)
        step("index file: restore the index (FAISS structures deserialised)")
        with g._repo.snapshot():
            n = g._repo.count_templates(engine.model_id)
            ids, vectors = g._sealer.open_many(
                g._repo.iter_sealed_templates(engine.model_id),
                gallery_id=g.gallery_id,
                model_id=engine.model_id,
                n=n,
                dim=dim,
            )
        step(f"rebuild instead: read and decrypt {n:,} sealed templates")
        TemplateIndex(dim, g.index_kind).build(ids, vectors)
        step(f"rebuild instead: build the {g.index_kind} index")
        del ids, vectors
        image = read_image(probe)
        crop, _, _, _ = engine.prepare(image.pixels, image.source)
        vector = engine.embed_crops([crop])[0]
        step("probe: decode, detect, align, embed")
        live.close()
        live.index, live.version, live.model_id = index, saved.version, engine.model_id
        live._ids = saved.arrays["ids"]
        g.identify_template(
            vector, probe_sha256=image.sha256, purpose="bench", case="PHASES", operator="bench"
        )
        step("search, candidate rows, ledger entry (fsync)")

    sys.path.insert(0, str(Path(__file__).parent))
    from _common import print_table

    print_table(["step", "ms"], [[name, f"{s * 1e3:,.0f}"] for name, s in steps])


if __name__ == "__main__":
    main()
