"""Embedding and processing on a Dask cluster: `simsearch embed|process --cluster ...`.

The images are split into batches; each batch runs on a worker, which opens the project
read-only and writes its per-image outputs (cached embeddings, probability maps) atomically,
skipping images already done. The client alone writes the project store, the index and the
exports. A worker that dies has its batches run again by another (Dask's scheduler re-runs
lost tasks); the images it finished stay done, and an image's output is written whole or not at
all, so none is lost or written twice.

Results are identical to a single-process run with as many torch threads per image as a
worker has (convolutions sum in another order with another thread count: float16 caches then
differ in the last bit).

Dask is optional: ``pip install 'simsearch[cluster]'``.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator, Sequence

from simsearch.inference.process import ProcessProgress, iter_process, prepare_maps_folder
from simsearch.io.images import Dataset
from simsearch.project.project import EmbedProgress, Project
from simsearch.util.errors import ConfigError

def cluster_client(address: str):
    """A `dask.distributed.Client` for `address`: 'local' or 'local:N' start a LocalCluster (closed
    with the client), anything else is the address of a running scheduler.

    Examples
    --------
    >>> client = cluster_client("local:2")            # doctest: +SKIP
    >>> client.close()                         # doctest: +SKIP
    """
    workers = check_cluster_address(address)
    require_dask()
    from dask.distributed import Client, LocalCluster

    if workers is not None:
        threads = max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
        client.close = _closing_cluster_too(client, cluster)
        return client
    try:
        return Client(address, timeout="20s")
    except OSError as error:
        raise ConfigError(f"--cluster: no Dask scheduler answers at {address} ({error})",
                          hint="start one (dask scheduler, or dask-jobqueue on SLURM) and give its address") from None


def require_dask() -> None:
    """A ConfigError that says how to install Dask, when it is not installed.

    Examples
    --------
    >>> require_dask()   # silent where simsearch[cluster] is installed
    """
    try:
        import dask.distributed  # noqa: F401
    except ModuleNotFoundError as error:
        raise ConfigError(f"--cluster needs Dask ({error.name} is missing)",
                          hint="pip install 'simsearch[cluster]'") from None


def check_cluster_address(address: str) -> int | None:
    """The number of local workers `address` asks for ('local': one per GPU, else one per 2
    cores; 'local:N': N), None for a scheduler's address; a ConfigError for anything else.

    Examples
    --------
    >>> check_cluster_address("local:3"), check_cluster_address("tcp://10.0.0.5:8786")
    (3, None)
    """
    if address == "local":
        import torch

        gpus = torch.cuda.device_count()
        return gpus if gpus > 0 else max(1, (os.cpu_count() or 2) // 2)
    if address.startswith("local:"):
        count = address.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--cluster: {address!r}: expected local:N with N >= 1 workers")
        return int(count)
    if "://" not in address:
        raise ConfigError(f"--cluster: {address!r} is neither local, local:N nor a scheduler address like tcp://HOST:8786")
    return None


def _closing_cluster_too(client, cluster):
    close = client.close

    def close_both(*args, **kwargs):
        close(*args, **kwargs)
        cluster.close()
    return close_both


def iter_embed_on_cluster(project: Project, client, *, batch_size: int = 8, device: str = "auto",
                          cancel: threading.Event | None = None) -> Iterator[EmbedProgress]:
    """`Project.iter_embed` with the images in batches on the cluster's workers; one event per
    image, as batches finish. Build the index afterwards (`Project.build_index`). The
    workers embed same-shape images together as `project.embed_batch_pixels` says.

    Examples
    --------
    >>> client = cluster_client("local:2")                                          # doctest: +SKIP
    >>> for event in iter_embed_on_cluster(project, client):                 # doctest: +SKIP
    ...     print(event.done, event.total, event.status)
    >>> index = project.build_index()                                        # doctest: +SKIP
    """
    ids = [record.id for record in project.dataset]
    batches = _batches(ids, batch_size)
    futures = [client.submit(_embed_batch, str(project.folder), batch, device, project.embed_batch_pixels, pure=False)
               for batch in batches]
    yield from _events(futures, len(ids), EmbedProgress, cancel)


def iter_process_on_cluster(project: Project, out: str | Path, client, *, images: Dataset | None = None,
                            batch_size: int = 8, device: str = "auto",
                            cancel: threading.Event | None = None) -> Iterator[ProcessProgress]:
    """`iter_process` with the images in batches on the cluster's workers; one event per image,
    as batches finish. Then `write_results` exports, as after a single-process run. The
    workers run same-shape images together as `project.embed_batch_pixels` says.

    Examples
    --------
    >>> for event in iter_process_on_cluster(project, "results", cluster_client("local:2")):   # doctest: +SKIP
    ...     pass
    >>> manifest = write_results(project, "results")                                   # doctest: +SKIP
    """
    dataset = images or project.dataset
    out = Path(out).resolve()
    prepare_maps_folder(project, out)  # here, once: workers then find the maps folder made for this model
    shared = client.scatter(dataset, broadcast=True)
    ids = [record.id for record in dataset]
    futures = [client.submit(_process_batch, str(project.folder), str(out), shared, batch, device, project.embed_batch_pixels,
                             pure=False)
               for batch in _batches(ids, batch_size)]
    yield from _events(futures, len(ids), ProcessProgress, cancel)


def _batches(ids: Sequence[str], size: int) -> list[list[str]]:
    if size < 1:
        raise ConfigError(f"batch size: at least 1 image, got {size}")
    return [list(ids[start:start + size]) for start in range(0, len(ids), size)]


def _events(futures, total: int, event_type, cancel: threading.Event | None):
    from dask.distributed import as_completed

    done = 0
    try:
        for future in as_completed(futures):
            if cancel is not None and cancel.is_set():
                return
            for image_id, status, message in future.result():
                done += 1
                yield event_type(done, total, image_id, status, message)
    finally:
        for future in futures:
            future.cancel()


# -- on a worker ------------------------------------------------------------------------------

_OPEN: dict[tuple, object] = {}  # this worker's open projects and predictors, by what they were opened from


def _worker_project(folder: str, device: str) -> Project:
    """The project, opened read-only once per worker process (again when its settings change)."""
    settings = Path(folder) / "project.yaml"
    key = ("project", folder, device, settings.stat().st_mtime_ns)
    if key not in _OPEN:
        import torch
        from dask.distributed import get_worker

        worker = get_worker()
        torch.set_num_threads(worker.state.nthreads)
        project = Project.open(folder, read_only=True)
        project.set_device(_worker_device(device, worker.name))
        _OPEN[key] = project
    return _OPEN[key]


def _worker_device(device: str, name) -> str:
    """One GPU per worker where there are several (workers of a LocalCluster are named 0..N-1)."""
    import torch

    count = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    if count > 1 and isinstance(name, int):
        return f"cuda:{name % count}"
    return device


def _embed_batch(folder: str, ids: list[str], device: str, batch_pixels: int) -> list[tuple[str, str, str]]:
    project = _worker_project(folder, device)
    project.embed_batch_pixels = batch_pixels  # the client's
    return [(e.image_id, e.status, e.message) for e in project.iter_embed(images=ids)]


def _process_batch(folder: str, out: str, dataset: Dataset, ids: list[str], device: str,
                   batch_pixels: int) -> list[tuple[str, str, str]]:
    from simsearch.inference.predict import Predictor

    project = _worker_project(folder, device)
    project.embed_batch_pixels = batch_pixels  # the client's
    key = ("predictor", folder, device, project.layout.model_weights.stat().st_mtime_ns)
    if key not in _OPEN:
        from dask.distributed import get_worker

        _OPEN[key] = Predictor(project, device=_worker_device(device, get_worker().name))
    events = iter_process(project, out, images=dataset.subset(ids), predictor=_OPEN[key])
    return [(e.image_id, e.status, e.message) for e in events]
