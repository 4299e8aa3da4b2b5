"""The all-pairs comparison on a real Dask LocalCluster gives the in-process counts bit for bit."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (faceaudit[dask])")

from faceaudit.audit import scores  # noqa: E402

if not hasattr(scores, "compare_block"):
    pytest.skip("the block comparator (audit split) is not merged yet", allow_module_level=True)

from faceaudit.audit.comparator import compare_templates  # noqa: E402
from faceaudit.audit.distributed import (  # noqa: E402
    _task_runs,
    compare_templates_dask,
    dask_client,
    worker_memory,
)
from faceaudit.dask_cluster import DaskTaskError, completed, scatter_once  # noqa: E402
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
            nan = va.dtype.kind == "f"  # NaN marks "no mate" in the searches: equal when both are NaN
            assert va.dtype == vb.dtype and np.array_equal(va, vb, equal_nan=nan), f.name
        else:
            assert va == vb, f.name


def fetched_keys(client, before: dict, prefix: str) -> list[str]:
    """The keys starting with ``prefix`` that a worker fetched from another worker since ``before`` (each worker's
    transfer log length then). Other transfers (the cluster's own bookkeeping under load) do not count."""

    def since(dask_worker, start: dict = before) -> list[str]:
        log = list(dask_worker.transfer_incoming_log)[start.get(dask_worker.address, 0) :]
        return [str(k) for entry in log for k in entry.get("keys", {})]

    return [k for keys in client.run(since).values() for k in keys if k.startswith(prefix)]


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
    assert fetched_keys(client, before, "SortedTemplates") == []


def test_equal_data_in_calls_back_to_back_never_shares_a_key(client):
    """CI once lost the templates of a second call with equal data: Dask's content-hash key was the first call's,
    which the scheduler was still releasing. Each scatter now has a key of its own, and five calls in a row
    with equal data all give the same counts."""
    x, gi, subj, groups = synthetic(900, 2, seed=5)
    a, b = scatter_once(client, x), scatter_once(client, x.copy())
    assert a.key != b.key
    want = compare_templates(x, gi, subj, groups, block=256)
    for _ in range(5):
        assert_identical(want, compare_templates_dask(x, gi, subj, groups, client=client, block=256, tasks=3))


def test_a_cancelled_task_is_a_clear_error(client):
    futures = [
        client.submit(time.sleep, 5, pure=False),
        client.submit(time.sleep, 5, pure=False),
    ]  # a worker stays busy for 5 s at most
    client.cancel(futures[:1])
    with pytest.raises(DaskTaskError, match="did not finish"):
        list(completed(client, futures))
    assert futures[1].cancelled()  # the rest stop too, instead of running on unwatched


def test_task_runs_cover_every_tile_in_order():
    tiles = [((a, a + 10), (b, b + 10)) for a in range(0, 50, 10) for b in range(a, 50, 10)]
    runs = _task_runs(tiles, 4)
    assert [t for run in runs for t in run] == tiles and len(runs) <= 4


def test_bad_addresses_are_clear():
    with pytest.raises(UsageError, match="local:N"), dask_client("local:0"):
        pass
    with pytest.raises(UsageError, match="cannot reach"), dask_client("tcp://127.0.0.1:9", timeout=2):
        pass


def test_audit_cli_on_a_scheduler_gives_the_in_process_audit(dask_local, tmp_path):
    import csv
    import json

    from conftest import run_cli

    import faceaudit
    from faceaudit.pipeline.results import EmbedResult

    x, gi, subj, _ = synthetic(400, 2, seed=7)
    paths = [f"img{i:04d}.jpg" for i in range(len(x))]
    with open(tmp_path / "m.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subject_id", "sex"])
        w.writerows([p, f"s{s}", ["female", "male", ""][g]] for p, s, g in zip(paths, subj, gi, strict=True))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    nan = np.full(len(x), np.nan, np.float32)
    EmbedResult(
        paths, x, ["ok"] * len(x), np.ones(len(x), np.int32), nan, nan, nan, nan, "synthetic", "central"
    ).save(tmp_path / "t.npz")
    here = faceaudit.run_audit(
        tmp_path / "m.csv", group_by="sex", templates=tmp_path / "t.npz", target_fmr=0.01
    )
    here.save(tmp_path / "local")
    out = tmp_path / "dask"
    res = run_cli(
        "audit", str(tmp_path / "m.csv"), "--templates", str(tmp_path / "t.npz"), "--group-by", "sex",
        "--target-fmr", "0.01", "--out", str(out), "--dask", dask_local.scheduler.address,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    a = json.loads((tmp_path / "local" / "audit.json").read_text())
    b = json.loads((out / "audit.json").read_text())
    assert b["config"].pop("comparison_on").startswith("Dask: 2 workers")
    mine, theirs = pd.read_csv(tmp_path / "local" / "by_group.csv"), pd.read_csv(out / "by_group.csv")
    # counts, rates, thresholds and intervals: exactly equal
    summary = [c for c in mine.columns if c.startswith(("mated_", "non_mated_")) and c != "n_non_mated"]
    pd.testing.assert_frame_equal(mine.drop(columns=summary), theirs.drop(columns=summary), check_exact=True)
    # score summaries (means, quantiles) are float reductions whose last digits depend on memory alignment,
    # in any two processes, Dask or not
    pd.testing.assert_frame_equal(mine[summary], theirs[summary], rtol=1e-6)
    assert [k for k in a if k not in b] == [] and a["config"] == b["config"]
    assert here.by_group["n_non_mated"].sum() > 10_000
    # the 1:N audit on the same scheduler: the same identification rates
    from faceaudit.audit.run_identification import audit_identification

    local = audit_identification(
        tmp_path / "m.csv", group_by="sex", templates=tmp_path / "t.npz", bootstrap=0
    )
    res = run_cli(
        "audit-identification", str(tmp_path / "m.csv"), "--templates", str(tmp_path / "t.npz"), "--group-by",
        "sex", "--bootstrap", "0", "--out", str(tmp_path / "dask-1n"), "--dask", dask_local.scheduler.address,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = json.loads((tmp_path / "dask-1n" / "audit.json").read_text())["identification"]
    assert got == json.loads(json.dumps(local.identification.to_dict())) and got["targets"]


def test_identification_searches_on_the_cluster_are_bit_for_bit_the_in_process_ones(client):
    from faceaudit.audit.distributed import search_dask
    from faceaudit.audit.identification import search, split_subjects
    from faceaudit.audit.run_identification import identify

    x, gi, subj, groups = synthetic(5000, 3, seed=11)
    split = split_subjects(subj, seed=2)
    probes = np.concatenate([split.mated, split.non_mated])
    mate = np.concatenate([split.mate, np.full(len(split.non_mated), -1, np.intp)])
    want = search(x[split.gallery], x[probes], mate, top=10, block=256)
    done = []
    got = search_dask(
        x[split.gallery], x[probes], mate, client=client, top=10, block=256, progress=done.append
    )
    assert_identical(want, got)
    assert sum(done) == len(probes) and len(probes) > 3000 and (got.mate_rank > 0).sum() > 1000
    before = client.run(lambda dask_worker: len(dask_worker.transfer_incoming_log))
    assert_identical(
        want, search_dask(x[split.gallery], x[probes], mate, client=client, top=10, block=256, tasks=5)
    )
    assert fetched_keys(client, before, "ndarray") == []  # the gallery reached each worker in the scatter
    # the whole 1:N audit: the same rates
    here = identify(x, subj, gi, groups, target_fpir=(1e-2,), seed=2)
    there = identify(x, subj, gi, groups, target_fpir=(1e-2,), seed=2, dask=client)
    assert here.to_dict() == there.to_dict() and here.targets


def test_a_dask_audit_finds_its_false_matches_and_label_suspects_on_the_workers(client, monkeypatch):
    """The default audit on Dask equals the in-process one (bootstrap intervals and label check included), and the
    client never scans the tiles itself: the label check's pairs come back with the histograms, the bootstrap's
    false matches from a second round of tasks."""
    from test_audit_kept_pairs import templates

    import faceaudit.audit.bootstrap as bootstrap_module
    from faceaudit.audit.label_errors import suspects_1to1
    from faceaudit.audit.run import audit_templates

    x, gi, subj, groups = templates(5, 1500, dim=128)
    paths = [f"img{i}.jpg" for i in range(len(x))]
    ids = [str(s) for s in subj]
    want = audit_templates(
        x, gi, subj, groups, bootstrap=200, label_check=(paths, ids), target_fmr=[1e-2, 1e-3]
    )
    suspects = suspects_1to1(x, subj, paths, ids)  # the plain pass, for reference

    def no_client_pass(*args, **kwargs):
        raise AssertionError("the client scanned the tiles itself")

    monkeypatch.setattr(bootstrap_module, "high_scoring_pairs", no_client_pass)
    monkeypatch.setattr("faceaudit.audit.label_errors._candidates", no_client_pass)
    got = audit_templates(
        x, gi, subj, groups, bootstrap=200, label_check=(paths, ids), target_fmr=[1e-2, 1e-3], dask=client
    )
    assert got.to_dict() == want.to_dict()
    assert got.label_check == want.label_check == suspects
    assert got.label_check["count"] >= 6
    boot = got.by_group
    assert "subject-clustered" in boot["fmr_boot_method"].iloc[0]
    assert (boot["fmr_ci_high"] > boot["fmr_ci_low"]).any()
