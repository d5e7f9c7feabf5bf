"""Embedding and processing on a real Dask LocalCluster: the same bytes as a single-process run
with as many torch threads as a worker has, and a worker killed mid-run loses no image."""
import os
import shutil
import signal

import pytest
import torch

pytest.importorskip("dask.distributed")

from conftest import TINY, planted_project  # noqa: E402

from simsearch import iter_process, iter_train, write_results  # noqa: E402
from simsearch.inference.cluster import cluster_client, iter_embed_on_cluster, iter_process_on_cluster  # noqa: E402

pytestmark = pytest.mark.slow


def _worker_threads() -> int:
    return max(1, (os.cpu_count() or 1) // 2)  # what cluster_client("local:2") gives each worker


def _cached_files(project) -> dict[str, bytes]:
    folder = project.embedding_folder
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.npy"))}


def _clear_cache(project) -> None:
    shutil.rmtree(project.embedding_folder, ignore_errors=True)


def _single_process(threads: int, run):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run()
    finally:
        torch.set_num_threads(before)


def test_two_workers_give_the_same_embeddings_maps_and_detections(curated, tmp_path):
    project, _ = curated
    list(iter_train(project, TINY, device="cpu"))
    threads = _worker_threads()
    # single process, as many threads as a worker: the reference bytes
    _clear_cache(project)
    reference_cache = _single_process(threads, lambda: (list(project.iter_embed()), _cached_files(project))[1])
    _single_process(threads, lambda: list(iter_process(project, tmp_path / "single", device="cpu")))
    single = write_results(project, tmp_path / "single", overviews=False)
    _clear_cache(project)
    client = cluster_client("local:2")
    try:
        events = list(iter_embed_on_cluster(project, client, batch_size=2, device="cpu"))
        assert sorted(e.image_id for e in events) == sorted(r.id for r in project.dataset)
        assert {e.status for e in events} == {"embedded"} and sorted(e.done for e in events) == list(range(1, 6))
        assert _cached_files(project) == reference_cache
        events = list(iter_process_on_cluster(project, tmp_path / "cluster", client, batch_size=2, device="cpu"))
        assert sorted(e.image_id for e in events) == sorted(r.id for r in project.dataset)
    finally:
        client.close()
    clustered = write_results(project, tmp_path / "cluster", overviews=False)
    assert clustered["detections"] == single["detections"] > 0
    for name in ("detections.csv", "detections.json", "summary.csv"):
        assert (tmp_path / "cluster" / name).read_bytes() == (tmp_path / "single" / name).read_bytes(), name
    maps = sorted(p.name for p in (tmp_path / "single" / "maps").glob("*.npy"))
    assert maps and maps == sorted(p.name for p in (tmp_path / "cluster" / "maps").glob("*.npy"))
    for name in maps:
        assert (tmp_path / "cluster" / "maps" / name).read_bytes() == (tmp_path / "single" / "maps" / name).read_bytes()


def test_a_worker_killed_mid_run_has_its_batches_run_again_and_no_image_is_lost(tmp_path):
    project, _ = planted_project(tmp_path, 12)
    project.set_patch_size(32)
    threads = _worker_threads()
    reference = _single_process(threads, lambda: (list(project.iter_embed()), _cached_files(project))[1])
    _clear_cache(project)
    client = cluster_client("local:2")
    killed = []
    try:
        pids = client.run(os.getpid)  # {worker address: pid}
        events = []
        for event in iter_embed_on_cluster(project, client, batch_size=1, device="cpu"):
            events.append(event)
            if not killed:  # after the first image: one worker dies with its batch in hand
                victim = next(pid for pid in pids.values())
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
    finally:
        client.close()
    assert killed
    assert sorted(e.image_id for e in events) == sorted(r.id for r in project.dataset)  # each image once
    assert {e.status for e in events} <= {"embedded", "cached"}
    assert _cached_files(project) == reference  # every image, bitwise as one process makes it
    assert not list(project.embedding_folder.rglob(".*.tmp*"))  # nothing half-written left behind
    project.close()


def test_cluster_addresses_are_checked_before_any_work(tmp_path, capsys):
    from conftest import write_planted

    from simsearch import ConfigError
    from simsearch.cli.main import main

    for bad in ("local:0", "local:x", "somewhere"):
        with pytest.raises(ConfigError, match="--cluster"):
            cluster_client(bad)
    write_planted(tmp_path / "images", 2)
    assert main(["embed", str(tmp_path / "images"), "--project", str(tmp_path / "p"), "--cluster", "local:-1", "-q"]) == 2
    assert "local:N with N >= 1" in capsys.readouterr().err and not (tmp_path / "p").exists()
