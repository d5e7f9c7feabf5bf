"""prefetched(): the same items and values as loading each in turn, errors with their item,
bounded work ahead, and loads that really run while the caller uses the item before."""
import threading

import pytest

from simsearch import ConfigError

from simsearch.util.prefetch import grouped, prefetched, written_behind


def _square_or_fail(n: int) -> int:
    if n % 7 == 3:
        raise ValueError(f"bad item {n}")
    return n * n


@pytest.mark.parametrize("ahead, threads", [(1, 1), (2, 1), (3, 2), (8, 4)])
def test_same_items_values_and_errors_as_loading_each_in_turn(ahead, threads):
    def view(results):
        return [(r.item, r.value, None if r.error is None else str(r.error)) for r in results]

    reference = view(prefetched(range(30), _square_or_fail, ahead=0))
    assert reference[3] == (3, None, "bad item 3") and reference[4] == (4, 16, None)
    assert view(prefetched(range(30), _square_or_fail, ahead=ahead, threads=threads)) == reference


@pytest.mark.parametrize("ahead", [1, 2, 4])
def test_loads_run_at_most_ahead_items_before_they_are_asked_for_and_stop_when_closed(ahead):
    started, lock = [], threading.Lock()

    def load(n):
        with lock:
            started.append(n)
        return n

    results = prefetched(range(100), load, ahead=ahead)
    for position, result in enumerate(results):
        with lock:
            assert max(started) <= position + ahead  # never more than `ahead` beyond the item in hand
        if position == 5:
            break
    results.close()
    assert max(started) <= 5 + ahead and len(started) == len(set(started))


def test_the_next_item_loads_while_the_caller_holds_this_one():
    """With ahead >= 1 the load of item 1 happens while the caller still works on item 0; with
    ahead=0 it cannot (loading waits for the caller)."""
    def run(ahead: int) -> bool:
        second_loading = threading.Event()

        def load(n):
            if n == 1:
                second_loading.set()
            return n

        results = prefetched(range(3), load, ahead=ahead)
        next(results)
        overlapped = second_loading.wait(timeout=0.5 if ahead == 0 else 10)
        results.close()
        return overlapped

    assert run(1) and not run(0)


def _steps(log: list, lock: threading.Lock, count: int = 12):
    """(write, item) per item: every third item has nothing to write, item 4's write fails."""
    for n in range(count):
        with lock:
            log.append(("computed", n))

        def write(n=n):
            if n == 4:
                raise OSError(f"disk full at {n}")
            with lock:
                log.append(("written", n))

        yield (None if n % 3 == 2 else write), n


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_written_behind_gives_the_items_and_write_errors_of_writing_each_in_turn(depth):
    def view(results):
        return [(item, None if error is None else str(error)) for item, error in results]

    reference_log, log, lock = [], [], threading.Lock()
    reference = view(written_behind(_steps(reference_log, lock), depth=0))
    assert reference[4] == (4, "disk full at 4") and reference[5] == (5, None) and len(reference) == 12
    assert view(written_behind(_steps(log, lock), depth=depth)) == reference
    written = [n for kind, n in log if kind == "written"]
    assert written == [n for kind, n in reference_log if kind == "written"]  # one writer: files in order


def test_each_item_comes_after_its_write_and_at_most_depth_writes_wait():
    for depth in (1, 3):
        log, lock = [], threading.Lock()
        for item, _ in written_behind(_steps(log, lock), depth=depth):
            with lock:
                if item % 3 != 2 and item != 4:
                    assert ("written", item) in log  # an item is announced once its file is there
                computed = max(n for kind, n in log if kind == "computed")
                assert computed <= item + depth  # never more than `depth` steps beyond the item in hand


def test_the_next_step_is_computed_while_the_write_runs_and_closing_waits_for_it():
    release, computing_next, finished = threading.Event(), threading.Event(), []

    def steps():
        yield (lambda: release.wait(10) and finished.append(0)), 0
        computing_next.set()  # the write of item 0 is still waiting: work overlaps it
        release.set()
        yield None, 1

    results = written_behind(steps())
    assert next(results)[0] == 0 and computing_next.is_set() and finished == [0]
    results.close()

    slow_write = (lambda: threading.Event().wait(0.3) or finished.append(2)), 2
    results = written_behind(iter([(lambda: finished.append(1), 1), slow_write, (None, 3)]))
    assert next(results)[0] == 1 and finished == [0, 1]  # item 2's write is in flight now
    results.close()  # closing early waits for it: its file is whole when the caller goes on
    assert finished == [0, 1, 2]


def test_grouped_keeps_the_order_and_starts_a_group_where_an_item_does_not_join():
    joins = lambda group, n: n % 2 == group[0] % 2 and len(group) < 3  # noqa: E731
    assert list(grouped([], joins)) == []
    assert list(grouped([1, 3, 5, 7, 2, 9], joins)) == [[1, 3, 5], [7], [2], [9]]


def test_embedding_with_images_read_ahead_equals_one_at_a_time(tmp_path):
    """The same statuses (a file broken after the project was made fails in its place) and
    bitwise the same cached embeddings, read ahead or not, by one or three decoding threads."""
    import numpy as np
    from conftest import planted_project

    runs = []
    for ahead, threads in ((0, None), (3, None), (2, 3)):
        project, _ = planted_project(tmp_path / f"ahead{ahead}-{threads}", 6)
        project.set_patch_size(32)
        (tmp_path / f"ahead{ahead}-{threads}" / "images" / "img4.tif").write_bytes(b"II*\x00 truncated")
        project.prefetch_images, project.decode_threads = ahead, threads
        statuses = [event.status for event in project.iter_embed()]
        vectors = [np.asarray(project.embeddings(r.id).vectors) for r in project.dataset if r.relpath != "img4.tif"]
        runs.append((statuses, vectors))
        project.close()
    assert runs[0][0] == runs[1][0] == runs[2][0] == ["embedded"] * 4 + ["failed", "embedded"]
    for reference, *others in zip(*(vectors for _, vectors in runs)):
        for other in others:
            np.testing.assert_array_equal(reference, other)


def test_read_ahead_decodes_in_one_thread_beside_a_cpu_network_and_as_many_as_asked(tmp_path):
    """By default one decoding thread where the network runs on the CPU; `decode_threads` N
    decodes N images at once, with at least two images ahead per thread."""
    from conftest import planted_project

    project, _ = planted_project(tmp_path, 6)
    running, most, lock = [0], [0], threading.Lock()
    both = threading.Barrier(2, timeout=5)

    def load(n):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if project.decode_threads == 2 and n < 2:
            both.wait()  # the first two loads overlap, or this times out
        with lock:
            running[0] -= 1
        return n

    assert [x.value for x in project.read_ahead(range(6), load, device="cpu")] == list(range(6)) and most[0] == 1
    project.decode_threads = 2
    assert [x.value for x in project.read_ahead(range(6), load, device="cpu")] == list(range(6)) and most[0] == 2
    project.decode_threads = 0
    with pytest.raises(ConfigError, match="decode threads: at least 1, got 0"):
        list(project.read_ahead(range(2), load))
    project.close()


def test_images_embedded_together_equal_one_at_a_time(tmp_path, monkeypatch):
    """Same-shape images embedded as batches (`embed_batch_pixels`: here up to 3 images) give
    the same events in the same order (a broken file fails in its place and ends a batch; an
    image of another shape is embedded alone) and the cached vectors of one image at a time."""
    import numpy as np
    import tifffile
    from conftest import planted_project
    from simsearch.features.embed import DenseEmbedder

    batches = []
    embed_batch = DenseEmbedder.embed_batch
    monkeypatch.setattr(DenseEmbedder, "embed_batch", lambda self, images: batches.append(len(images)) or embed_batch(self, images))
    runs = []
    for budget in (0, None):
        project, _ = planted_project(tmp_path / f"budget{budget}", 8)
        project.set_patch_size(32)
        folder = tmp_path / f"budget{budget}" / "images"
        (folder / "img4.tif").write_bytes(b"II*\x00 truncated")
        tifffile.imwrite(folder / "img6.tif", tifffile.imread(folder / "img6.tif")[:-16])  # another shape
        height, width = tifffile.imread(folder / "img0.tif").shape[:2]
        project.embed_batch_pixels = budget if budget is not None else 3 * height * width
        events = [(event.done, event.image_id, event.status) for event in project.iter_embed()]
        vectors = [np.asarray(project.embeddings(r.id).vectors) for r in project.dataset if r.relpath != "img4.tif"]
        runs.append((events, vectors))
        project.close()
    assert [status for *_, status in runs[0][0]] == ["embedded"] * 4 + ["failed"] + ["embedded"] * 3
    assert runs[0][0] == runs[1][0]
    assert batches == [3], batches  # img0-2 together; img3 (then the broken img4), img5, img6 (another shape), img7 alone
    for alone, together in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(together, alone, atol=2e-3)


def test_a_cache_file_that_cannot_be_written_fails_its_image_only(tmp_path):
    """Vectors are written behind the network: a write that fails (here a folder stands where
    img2's cache file goes) reports img2 as failed, caches nothing of it, and the others go on."""
    from conftest import planted_project

    project, _ = planted_project(tmp_path, 5)
    project.set_patch_size(32)
    blocked = project._cache_path(project.dataset.images[2].id)
    (blocked / "in-the-way").mkdir(parents=True)
    events = list(project.iter_embed())
    assert [e.status for e in events] == ["embedded", "embedded", "failed", "embedded", "embedded"]
    assert str(blocked) in events[2].message and not blocked.is_file()
    assert [e.status for e in project.iter_embed()] == ["cached", "cached", "failed", "cached", "cached"]
    project.close()
