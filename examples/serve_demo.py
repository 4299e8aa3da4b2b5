"""``make serve``: a small demo gallery (five FairFace faces, CC BY 4.0) with one API key per role, then serve it.

    python examples/serve_demo.py [--dir serve-demo] [--port 8000]

The keys are printed and written to DIR/keys.txt (mode 0600). The gallery is rebuilt on every run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

FACES = Path(__file__).resolve().parents[1] / "tests" / "data" / "fairface"
PEOPLE = {
    "0001": "Demo Person One",
    "0002": "Demo Person Two",
    "0003": "Demo Person Three",
    "0005": "Demo Person Five",
    "0007": "Demo Person Seven",
}
ROLES = {
    "admin": "admin",
    "enroller": "enroller",
    "searcher": "searcher",
    "reviewer-1": "reviewer",
    "reviewer-2": "reviewer",
    "auditor": "auditor",
    "dpo": "dpo",
}


def build_demo(folder: Path) -> tuple[Path, dict[str, str]]:
    """(Re)build the demo gallery in ``folder``; returns its path and the key of each principal."""
    from faceaudit.gallery import Consent, Gallery
    from faceaudit.gallery.crypto import generate_key, write_key_file
    from faceaudit.gallery.values import Actor, utc_today
    from faceaudit.operations.keys import KeyHasher
    from faceaudit.operations.records import ServiceStore

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = folder / "demo.db"
    write_key_file(Path(f"{db}.key"), generate_key())
    with Gallery(db, create=True, operator="make serve") as g:
        for n, name in PEOPLE.items():
            g.enroll(
                f"demo-{n}",
                [FACES / f"fairface_{n}.jpg"],
                name=name,
                consent=Consent("demo (FairFace, CC BY 4.0)", "make serve"),
                operator="make serve",
                store_images=True,
            )
    store = ServiceStore(db)
    hasher = KeyHasher.for_gallery(db)
    keys = {}
    for principal, role in ROLES.items():
        new = hasher.create(
            store, principal=principal, roles=role, actor=Actor.local("make serve"), today=utc_today()
        )
        keys[principal] = new.key
    store.close()
    return db, keys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="serve-demo")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args()

    folder = Path(args.dir)
    db, keys = build_demo(folder)
    lines = [f"{principal:<11} {ROLES[principal]:<9} {key}" for principal, key in keys.items()]
    path = folder / "keys.txt"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    print(f"demo gallery {db} with {len(PEOPLE)} subjects; API keys (also in {path}):", file=sys.stderr)
    print("\n".join(lines), file=sys.stderr)
    print(f"console: http://127.0.0.1:{args.port}/ui/ (paste a key)", file=sys.stderr)
    os.execv(
        sys.executable,
        [sys.executable, "-m", "faceaudit", "serve", "--db", str(db), "--port", str(args.port)],
    )


if __name__ == "__main__":
    sys.exit(main())
