import numpy as np
import pytest

from simsearch import ConfigError, PatchIndex, ProjectError, similarity_map


def _unit(rng, n, dim):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_index_returns_planted_near_duplicate(tmp_path):
    rng = np.random.default_rng(0)
    dim = 64
    index = PatchIndex(dim)
    for i in range(5):
        grid = _unit(rng, 12 * 15, dim).reshape(12, 15, dim)
        centres = np.stack(np.meshgrid(np.arange(12) * 16.0, np.arange(15) * 16.0, indexing="ij"), -1)
        if i == 3:
            query = _unit(rng, 1, dim)[0]
            grid[7, 9] = query + 0.05 * _unit(rng, 1, dim)[0]  # the near-duplicate
        index.add(f"img{i}", grid, centres)
    assert len(index) == 5 * 12 * 15
    hits = index.search(query, k=3)
    assert hits.image_ids[0, 0] == "img3" and (hits.rows[0, 0], hits.cols[0, 0]) == (7, 9)
    np.testing.assert_allclose(hits.centres[0, 0], [7 * 16.0, 9 * 16.0])
    assert hits.scores[0, 0] > 0.99 > hits.scores[0, 1]
    # exact search: the same answer as brute force
    everything = np.concatenate([index._cpu_index.reconstruct_n(0, len(index))])
    brute = np.sort(everything @ query)[::-1][:3]
    np.testing.assert_allclose(hits.scores[0], brute, rtol=1e-5)

    index.save(tmp_path / "idx")
    loaded = PatchIndex.load(tmp_path / "idx")
    again = loaded.search(query * 3.0, k=3)  # queries are normalised
    assert list(again.image_ids[0]) == list(hits.image_ids[0])
    np.testing.assert_allclose(again.scores, hits.scores, rtol=1e-5)


def test_search_with_more_k_than_vectors_pads():
    index = PatchIndex(4)
    index.add("a", np.eye(4, dtype=np.float32)[:2], np.zeros((2, 2)))
    hits = index.search(np.array([1, 0, 0, 0], np.float32), k=4)
    assert list(hits.image_ids[0]) == ["a", "a", "", ""]
    assert hits.scores[0, 0] == pytest.approx(1.0) and np.isneginf(hits.scores[0, 2:]).all()
    empty = PatchIndex(4).search(np.ones(4), k=2)
    assert empty.scores.shape == (1, 2) and list(empty.image_ids[0]) == ["", ""]


def test_index_errors(tmp_path):
    index = PatchIndex(8)
    with pytest.raises(ConfigError, match="dimension"):
        index.add("a", np.zeros((2, 4), np.float32), np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="dimension"):
        index.search(np.zeros(4), k=1)
    with pytest.raises(ConfigError, match="k"):
        index.search(np.zeros(8), k=0)
    with pytest.raises(ProjectError, match="no patch index"):
        PatchIndex.load(tmp_path)


def test_similarity_map_matches_numpy_reference():
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 6 * 7, 16).reshape(6, 7, 16).astype(np.float16)
    prototypes = rng.normal(size=(3, 16)).astype(np.float32)
    heat = similarity_map(vectors, prototypes)
    unit = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    expected = (vectors.astype(np.float32) @ unit.T).max(axis=-1)
    np.testing.assert_allclose(heat, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError):
        similarity_map(vectors, np.zeros((2, 8)))


def test_a_class_similarity_weighs_the_best_prototype_with_the_second():
    """With rows grouped by prototype (a prototype and its rotations), each prototype's max over
    its rows, then (best + w x second) / (1 + w): against numpy; one prototype is its max;
    rows that are not whole groups are refused."""
    from simsearch.search.similarity import SECOND_PROTOTYPE_WEIGHT

    rng = np.random.default_rng(3)
    vectors = _unit(rng, 5 * 6, 16).reshape(5, 6, 16).astype(np.float16)
    prototypes = rng.normal(size=(3 * 4, 16)).astype(np.float32)  # 3 prototypes x 4 rotations
    unit = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    per_prototype = (vectors.astype(np.float32) @ unit.T).reshape(5, 6, 3, 4).max(axis=-1)
    best, second = np.sort(per_prototype, axis=-1)[..., -1], np.sort(per_prototype, axis=-1)[..., -2]
    expected = (best + SECOND_PROTOTYPE_WEIGHT * second) / (1 + SECOND_PROTOTYPE_WEIGHT)
    np.testing.assert_allclose(similarity_map(vectors, prototypes, per_prototype=4), expected, rtol=1e-5, atol=1e-6)
    assert np.all(similarity_map(vectors, prototypes, per_prototype=4) < similarity_map(vectors, prototypes) + 1e-6)
    np.testing.assert_allclose(similarity_map(vectors, prototypes[:4], per_prototype=4), per_prototype[..., 0],
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="groups of 4"):
        similarity_map(vectors, prototypes[:6], per_prototype=4)


def test_similarity_map_of_a_slide_goes_in_bands_of_rows(tmp_path, monkeypatch):
    """A memory-mapped slide's vectors are compared a few rows at a time: the same map."""
    import simsearch.search.similarity as similarity

    rng = np.random.default_rng(2)
    np.save(tmp_path / "vectors.npy", _unit(rng, 9 * 5, 16).reshape(9, 5, 16).astype(np.float16))
    vectors = np.load(tmp_path / "vectors.npy", mmap_mode="r")
    prototypes = rng.normal(size=(2, 16)).astype(np.float32)
    whole = similarity_map(vectors, prototypes)
    monkeypatch.setattr(similarity, "_BAND_VALUES", 2 * 5 * 16)  # two rows at a time
    np.testing.assert_allclose(similarity_map(vectors, prototypes), whole, rtol=1e-6, atol=1e-7)


def test_an_image_searched_from_disk_answers_as_in_memory(tmp_path, monkeypatch):
    """A slide's vectors left in their cache file (`add_on_disk`), read a few rows at a time,
    give the same answers, scores, positions, centres and levels as the same vectors held by
    FAISS; merged with images in memory; the same after save and load; a vanished file is
    named."""
    import simsearch.search.index as index_module
    from simsearch import PatchGeometry

    rng = np.random.default_rng(5)
    slide = rng.normal(size=(23, 17, 16))
    slide = (slide / np.linalg.norm(slide, axis=-1, keepdims=True)).astype(np.float16).astype(np.float32)  # as cached
    small = rng.normal(size=(4, 6, 16)).astype(np.float32)
    small /= np.linalg.norm(small, axis=-1, keepdims=True)
    geometry = PatchGeometry.for_patch(64).at_scale(2.0)
    centres = lambda v: np.stack(np.meshgrid(*(np.arange(n) for n in v.shape[:2]), indexing="ij"), -1)  # noqa: E731
    path = tmp_path / "cache" / "slide.npy"
    path.parent.mkdir()
    np.save(path, slide.astype(np.float16))
    monkeypatch.setattr(index_module, "_BAND_VALUES", 3 * 17 * 16)  # three grid rows at a time: eight reads

    memory, disk = PatchIndex(16, use_gpu=False), PatchIndex(16, use_gpu=False)
    for index in (memory, disk):
        index.add("small.png@1", small, np.stack(geometry.centre(*np.moveaxis(centres(small), -1, 0)), -1))
    memory.add("slide.tif@2", slide, np.stack(geometry.centre(*np.moveaxis(centres(slide), -1, 0)), -1), level=2.0)
    disk.add_on_disk("slide.tif@2", path, geometry, level=2.0)
    assert len(disk) == len(memory) == 4 * 6 + 23 * 17
    queries = np.concatenate([slide[[0, 11, 22], [3, 9, 16]], small[2:3, 1], rng.normal(size=(2, 16))])
    disk.save(tmp_path / "index")
    for index in (disk, PatchIndex.load(tmp_path / "index")):
        for k in (1, 7, 500):  # 500: more than every vector, the rest missing
            want, got = memory.search(queries, k=k), index.search(queries, k=k)
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-6)
            assert (got.image_ids == want.image_ids).all() and (got.rows == want.rows).all() and (got.cols == want.cols).all()
            np.testing.assert_allclose(got.centres, want.centres)
            np.testing.assert_array_equal(got.levels, want.levels)
    assert disk.search(slide[11, 9], k=1).image_ids[0, 0] == "slide.tif@2"
    path.unlink()
    with pytest.raises(ProjectError, match="slide.npy"):
        PatchIndex.load(tmp_path / "index").search(queries, k=3)
    with pytest.raises(ProjectError, match="slide.npy"):  # named alike when the file is added
        PatchIndex(16, use_gpu=False).add_on_disk("slide.tif@2", path, geometry)
    np.save(path, slide[..., :8])
    with pytest.raises(ConfigError, match=r"slide.npy.*\(rows, cols, 16\)"):
        PatchIndex(16, use_gpu=False).add_on_disk("slide.tif@2", path, geometry)
