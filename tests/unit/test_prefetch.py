"""prefetched(): the same items and values as loading each in turn, errors with their item,
bounded work ahead, and loads that really run while the caller uses the item before."""
import threading

import pytest

from simsearch.util.prefetch import prefetched


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


def test_embedding_with_images_read_ahead_equals_one_at_a_time(tmp_path):
    """The same statuses (a file broken after the project was made fails in its place) and
    bitwise the same cached embeddings, read ahead or not."""
    import numpy as np
    from conftest import planted_project

    runs = []
    for ahead in (0, 3):
        project, _ = planted_project(tmp_path / f"ahead{ahead}", 6)
        project.set_patch_size(32)
        (tmp_path / f"ahead{ahead}" / "images" / "img4.tif").write_bytes(b"II*\x00 truncated")
        project.prefetch_images = ahead
        statuses = [event.status for event in project.iter_embed()]
        vectors = [np.asarray(project.embeddings(r.id).vectors) for r in project.dataset if r.relpath != "img4.tif"]
        runs.append((statuses, vectors))
        project.close()
    assert runs[0][0] == runs[1][0] == ["embedded"] * 4 + ["failed", "embedded"]
    for reference, ahead in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(reference, ahead)


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
    assert batches == [3, 1, 1, 1, 1], batches  # img0-2; img3 (then the broken img4); img5; img6 (another shape); img7
    for alone, together in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(together, alone, atol=2e-3)
