"""The all-pairs comparison on a real Dask LocalCluster gives the in-process counts bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (faceaudit[dask])")

from faceaudit.audit import scores  # noqa: E402

if not hasattr(scores, "compare_block"):
    pytest.skip("the block comparator (audit split) is not merged yet", allow_module_level=True)

from faceaudit.audit.distributed import (  # noqa: E402
    _task_runs,
    compare_templates_dask,
    dask_client,
    worker_memory,
)
from faceaudit.audit.scores import compare_templates  # noqa: E402
from faceaudit.errors import UsageError  # noqa: E402


def synthetic(n: int, n_groups: int, seed: int = 0):
    """Templates of subjects with 1-4 images each (mated pairs), some without a group label."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(n), rng.integers(1, 5, n))[:n]
    centre = rng.standard_normal((n, 128)).astype(np.float32)
    x = centre[subject] + 0.6 * rng.standard_normal((n, 128)).astype(np.float32)
    group_index = rng.integers(0, n_groups, n)[subject]
    group_index[rng.random(n) < 0.05] = -1
    return x, group_index, subject, [f"g{i}" for i in range(n_groups)]


def assert_identical(a, b):
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and np.array_equal(va, vb), f.name
        else:
            assert va == vb, f.name


@pytest.fixture()
def client(dask_local):
    return dask_local


def test_local_cluster_counts_are_bit_for_bit_the_in_process_counts(client):
    x, gi, subj, groups = synthetic(2600, 3)
    want = compare_templates(x, gi, subj, groups, block=512)
    done = []
    got = compare_templates_dask(x, gi, subj, groups, client=client, block=512, progress=done.append)
    assert_identical(want, got)
    assert sum(done) == 2600 * 2599 // 2  # every pair reported once
    assert len(got.mated_scores) > 1000 and got.non_mated.sum() > 3_000_000
    # a different split into tasks changes nothing either
    assert_identical(want, compare_templates_dask(x, gi, subj, groups, client=client, block=512, tasks=3))
    mem = worker_memory(client)
    assert len(mem) == 2 and all(m["VmHWM"] >= m["VmRSS"] > 0 for m in mem.values())


def test_templates_move_to_each_worker_once(client):
    x, gi, subj, groups = synthetic(1500, 2, seed=3)
    before = client.run(lambda dask_worker: len(dask_worker.transfer_incoming_log))
    compare_templates_dask(x, gi, subj, groups, client=client, block=256, tasks=12)
    # the templates reach each worker in the broadcast scatter, so no task fetches them from another worker
    after = client.run(lambda dask_worker: len(dask_worker.transfer_incoming_log))
    assert after == before, (before, after)


def test_task_runs_cover_every_tile_in_order():
    tiles = [((a, a + 10), (b, b + 10)) for a in range(0, 50, 10) for b in range(a, 50, 10)]
    runs = _task_runs(tiles, 4)
    assert [t for run in runs for t in run] == tiles and len(runs) <= 4


def test_bad_addresses_are_clear():
    with pytest.raises(UsageError, match="local:N"), dask_client("local:0"):
        pass
    with pytest.raises(UsageError, match="cannot reach"), dask_client("tcp://127.0.0.1:9", timeout=2):
        pass
