"""An erased subject never comes back through a gallery opened with ``index_file=True`` (how the CLI opens it): on
SQLite the index file beside the gallery is removed and made unreadable by the erasure; PostgreSQL keeps no
file, and its index is rebuilt or caught up. Both stores."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest

from faceaudit.gallery import Consent
from faceaudit.gallery.crypto import generate_key

FAIRFACE = Path(__file__).parents[1] / "data" / "fairface"
FACES = {"ada": "0002", "ben": "0005", "cy": "0007"}


@pytest.fixture()
def probe(tmp_path) -> Path:
    """Ben's face, mirrored: the same person, not the enrolled image."""
    p = tmp_path / "ben.jpg"
    cv2.imwrite(str(p), cv2.flip(cv2.imread(str(FAIRFACE / "fairface_0005.jpg")), 1))
    return p


def refs(gallery, probe: Path) -> list[str]:
    result = gallery.identify(probe, purpose="p", case="c", operator="o", top_k=3)
    return [c.subject_ref for c in result.candidates]


def test_a_subject_erased_after_the_index_was_kept_is_never_returned(store, engine, probe):
    store.key_file.write_text(generate_key().hex())
    os.chmod(store.key_file, 0o600)
    with store.gallery(engine=engine) as g:
        for ref, n in FACES.items():
            g.enroll(ref, [FAIRFACE / f"fairface_{n}.jpg"], name=ref, consent=Consent("b", "r"), operator="o")
    index = Path(f"{store.db}.index")
    with store.gallery(engine=engine, index_file=True) as kept:
        assert refs(kept, probe)[0] == "ben"
        assert index.exists() is (not store.pg)
        with store.gallery(engine=engine) as other:  # another process's erasure
            other.erase("ben", reason="request", operator="dpo")
        assert not index.exists()
        assert "ben" not in refs(kept, probe)  # the open gallery catches up by version
    with store.gallery(engine=engine, index_file=True) as fresh:
        assert "ben" not in refs(fresh, probe)
        assert fresh._live.origin == "rebuilt"  # nothing written before the erasure was used
