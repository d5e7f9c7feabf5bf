"""The iterative patch selection loop on synthetic images with planted discs and crosses."""
import threading

import numpy as np
import pytest

from simsearch import ConfigError, DatasetError, Project, similarity_map
from simsearch.curation.session import Curation
from simsearch.project.store import PatchRecord

from conftest import below_the_objects, planted_project

@pytest.fixture
def planted(tmp_path):
    project, truth = planted_project(tmp_path, 6)
    yield project, truth
    project.close()


def _box(centre, half=16):
    y, x = centre
    return (x - half, y - half, x + half, y + half)


def _nearest(points, y, x):
    return min(np.hypot(py - y, px - x) for py, px in points)


def test_suggestions_recover_planted_objects_of_their_kind(planted):
    project, truth = planted
    curation = Curation(project)
    curation.add_class("disc")
    curation.add_class("cross")
    name = lambda s: project.dataset.by_id(s.image_id).relpath  # noqa: E731
    curation.add_prototype("disc", "img0.tif", _box(truth["img0.tif"][0][0]))
    assert project.geometry.patch_size == (32, 32)  # fixed by the first prototype
    curation.add_prototype("cross", "img1.tif", _box(truth["img1.tif"][1][0]))
    radius = 3 * 0.1 * 32 + project.geometry.grid_step / 2
    for kind, index in (("disc", 0), ("cross", 1)):
        suggestions = curation.suggestions(kind, threshold=-1.0)
        count = sum(len(truth[n][index]) for n in ("img0.tif", "img1.tif", "img2.tif"))
        top = suggestions[:count]
        assert all(_nearest(truth[name(s)][index], s.y, s.x) <= radius for s in top), kind
        found = {(name(s), min(range(3), key=lambda k: np.hypot(*np.subtract(truth[name(s)][index][k], (s.y, s.x))))) for s in top}
        assert len(found) == count  # every planted object, once
        other = suggestions[count]  # the best remaining suggestion is clearly less similar
        assert other.similarity < top[-1].similarity
        x0, y0, x1, y1 = top[0].box
        assert (x1 - x0, y1 - y0) == pytest.approx((32, 32))


def test_one_prototype_on_something_frequent_does_not_lift_it_everywhere(planted):
    """The class's similarity is the best prototype's weighted with the second best's: two disc
    prototypes plus a 'disc' marked on a cross score the crosses clearly below every disc (with
    the max over prototypes the crosses would tie the discs). The maps are made again when a
    prototype comes or goes, and agree with `similarity_at` and `class_similarity`."""
    project, truth = planted
    curation = Curation(project)
    curation.add_class("disc")
    curation.add_prototype("disc", "img0.tif", _box(truth["img0.tif"][0][0]))
    curation.add_prototype("disc", "img1.tif", _box(truth["img1.tif"][0][0]))
    before = {i: levels[1.0].copy() for i, levels in curation.level_maps("disc").items()}
    wrong = curation.add_prototype("disc", "img1.tif", _box(truth["img1.tif"][1][0]))  # a cross
    maps = curation.level_maps("disc")
    image = project.dataset.find("img2.tif").id
    np.testing.assert_allclose(maps[image][1.0], curation.class_similarity("disc", project.embeddings(image).vectors))
    geometry, heat = project.geometry, maps[image][1.0]
    at = lambda y, x: heat[geometry.nearest_position(y, x, heat.shape)]  # noqa: E731
    discs = [at(*centre) for centre in truth["img2.tif"][0]]
    crosses = [at(*centre) for centre in truth["img2.tif"][1]]
    plain = similarity_map(project.embeddings(image).vectors, curation.prototype_vectors("disc"))
    assert max(plain[geometry.nearest_position(y, x, heat.shape)] for y, x in truth["img2.tif"][1]) > min(
        plain[geometry.nearest_position(y, x, heat.shape)] for y, x in truth["img2.tif"][0]) - 0.02
    assert min(discs) > max(crosses) + 0.03, (discs, crosses)
    records = [PatchRecord(image, float(y), float(x)) for y, x in truth["img2.tif"][0]]
    np.testing.assert_allclose(curation.similarity_at("disc", records), discs, atol=1e-5)
    curation.remove_prototype(wrong.id)
    for image_id, levels in curation.level_maps("disc").items():
        np.testing.assert_allclose(levels[1.0], before[image_id], atol=1e-6)
    # the next prototype may get the deleted one's id (SQLite reuses the largest): the maps follow it too
    wrong = curation.add_prototype("disc", "img1.tif", _box(truth["img1.tif"][1][0]))
    curation.level_maps("disc")
    curation.remove_prototype(wrong.id)
    curation.add_prototype("disc", "img1.tif", _box(truth["img1.tif"][1][1]))  # another cross
    fresh = Curation(project).level_maps("disc")
    for image_id, levels in curation.level_maps("disc").items():
        np.testing.assert_allclose(levels[1.0], fresh[image_id][1.0], atol=1e-6)
        assert not np.allclose(levels[1.0], before[image_id], atol=1e-3)


def test_a_prototype_is_embedded_once_for_every_curation_of_the_project(planted):
    """`Project.vectors_at` keeps what it embeds (a second Curation, e.g. a training identity
    check, reuses it), equal to embedding the patch anew, until the embedding changes."""
    project, truth = planted
    curation = Curation(project)
    curation.add_class("disc")
    prototype = curation.add_prototype("disc", "img0.tif", _box(truth["img0.tif"][0][0]))
    vectors = curation.prototype_vectors("disc")
    again = Curation(project).prototype_vectors("disc")
    np.testing.assert_array_equal(again, vectors)
    kept = project.vectors_at(prototype.image_id, prototype.centre, 1.0, (0, 1, 2, 3))
    assert project.vectors_at(prototype.image_id, prototype.centre, 1.0, (0, 1, 2, 3)) is kept
    fresh = project.embedder_at(1.0).embed_at(project.dataset.read(prototype.image_id), np.array([prototype.centre]),
                                              rotations=(0, 1, 2, 3))
    np.testing.assert_allclose(kept, fresh, atol=1e-6)
    project.set_device("cpu" if project._device != "cpu" else "auto")  # a change of device embeds again
    assert project.vectors_at(prototype.image_id, prototype.centre, 1.0, (0, 1, 2, 3)) is not kept


def test_threshold_flags_and_confirmation_round_trip(planted, tmp_path):
    project, truth = planted
    curation = Curation(project)
    curation.add_class("disc")
    curation.add_prototype("disc", "img0.tif", _box(truth["img0.tif"][0][0]))
    all_suggestions = curation.suggestions("disc", threshold=-1.0)
    counts, edges = curation.similarity_histogram("disc", bins=10)
    assert counts.sum() == len(all_suggestions) and edges[0] == -1.0 and edges[-1] == 1.0
    threshold = all_suggestions[12].similarity
    curation.set_threshold("disc", threshold)
    shown = curation.suggestions("disc")
    assert len(shown) == 13 and all(s.similarity >= threshold for s in shown)
    assert all(s.similarity >= 1.0 - 1e-6 for s in curation.suggestions("disc", threshold=1.0))
    assert curation.suggestions("disc").image_counts() == {s.image_id: sum(t.image_id == s.image_id for t in shown) for s in shown}
    curation.flag_negative(shown[-1])
    curation.flag_negative(shown[-2])
    curation.flag_negative(shown[-2], flagged=False)
    positives = curation.confirm_class("disc")
    assert len(positives) == 12 and shown[-1] not in positives
    project.close()

    with Project.open(project.folder) as again:
        curation = Curation(again)
        info = again.store.class_info("disc")
        assert info.similarity_threshold == pytest.approx(threshold) and info.confirmed
        reshown = curation.suggestions("disc")
        assert [s.flagged for s in reshown] == [False] * 12 + [True]
        assert len(again.store.patches("disc", "positive")) == 12
        assert len(again.store.patches("disc", "negative")) == 1


def test_background_excludes_positives_and_records_flags(planted):
    project, truth = planted
    curation = Curation(project)
    curation.add_class("disc")
    curation.add_prototype("disc", "img0.tif", _box(truth["img0.tif"][0][0]))
    curation.confirm_class("disc", threshold=below_the_objects(curation.suggestions("disc", threshold=-1.0), 9))
    candidates = curation.propose_background(count=5)
    assert [c.extreme for c in candidates].count("high") == 5 and [c.extreme for c in candidates].count("low") == 5
    positives = project.store.patches("disc", "positive")
    for c in candidates:
        assert all(not (abs(c.y - p.y) < 32 and abs(c.x - p.x) < 32) for p in positives if p.image_id == c.image_id)
    highs = [c for c in candidates if c.extreme == "high"]
    lows = [c for c in candidates if c.extreme == "low"]
    assert min(c.similarity for c in highs) > max(c.similarity for c in lows)
    curation.flag_not_background(highs[0])
    kept = curation.confirm_background()
    assert len(kept) == 9 and highs[0].record() not in [k.record() for k in kept]
    assert sum(flag for _, _, flag in project.store.background(confirmed_only=True)) == 9


def test_noisy_extraction_is_resumable_and_capped(planted):
    project, truth = planted
    curation = Curation(project)
    curation.add_class("disc")
    curation.add_prototype("disc", "img0.tif", _box(truth["img0.tif"][0][0]))
    threshold = below_the_objects(curation.suggestions("disc", threshold=-1.0), 9)  # the 9 displayed discs
    curation.confirm_class("disc", threshold=threshold)
    cancel = threading.Event()
    first = []
    for event in curation.iter_noisy(background_per_image=2, cancel=cancel):
        first.append(event)
        cancel.set()
    assert len(first) == 1
    rest = list(curation.iter_noisy(background_per_image=2))
    assert len(rest) == 2 and first[0].image_id not in {e.image_id for e in rest}
    noisy = project.store.noisy("disc")
    undisplayed = {project.dataset.find(f"img{i}.tif").id: f"img{i}.tif" for i in (3, 4, 5)}
    assert {p.image_id for p in noisy} <= set(undisplayed)
    near = [_nearest(truth[undisplayed[p.image_id]][0], p.y, p.x) <= 12 for p in noisy]
    assert sum(near) >= 7 and np.mean(near) >= 0.8  # mostly the planted discs
    assert len(project.store.noisy(None)) == 3 * 4  # 2 high + 2 low per image
    assert list(curation.iter_noisy(background_per_image=2)) == []  # all done: nothing repeated
    list(curation.iter_noisy(cap_per_class=2))  # another cap: extracted again
    assert project.store.noisy_count("disc") == 2
    assert list(curation.iter_noisy(cap_per_class=2)) == []
    curation.set_threshold("disc", threshold + 0.01)  # a new threshold: extracted again, from every image
    assert len(list(curation.iter_noisy(cap_per_class=2))) == 3
    curation.add_prototype("disc", "img1.tif", _box(truth["img1.tif"][0][0]))  # so does a new prototype
    assert len(list(curation.iter_noisy(cap_per_class=2))) == 3


def test_bad_input_is_refused_and_changes_nothing(planted):
    project, truth = planted
    curation = Curation(project)
    curation.add_class("disc")
    with pytest.raises(ConfigError, match="outside image"):
        curation.add_prototype("disc", "img0.tif", (190, 10, 230, 40))
    with pytest.raises(ConfigError, match="zero"):
        curation.add_prototype("disc", "img0.tif", (10, 10, 10, 40))
    with pytest.raises(ConfigError, match="unknown class 'dot'"):
        curation.add_prototype("dot", "img0.tif", (10, 10, 40, 40))
    with pytest.raises(DatasetError, match="nope.tif"):
        curation.add_prototype("disc", "nope.tif", (10, 10, 40, 40))
    assert project.geometry is None and project.store.prototypes() == []
    curation.add_prototype("disc", "img0.tif", _box(truth["img0.tif"][0][0]))
    with pytest.raises(ConfigError, match="outside"):
        curation.suggestions("disc", threshold=1.5)
    with pytest.raises(ConfigError, match="outside"):
        curation.set_threshold("disc", -2)
    assert project.store.class_info("disc").similarity_threshold == 0.5
    with pytest.raises(ConfigError, match="no unflagged suggestion above it"):  # 1.0: above every suggestion
        curation.confirm_class("disc", 1.0)
    assert not project.store.class_info("disc").confirmed and project.store.patches("disc", "positive") == []
    assert curation.confirm_class("disc", 1.0, allow_empty=True) == [] and project.store.class_info("disc").confirmed


def test_box_of_another_size_is_recentred(planted, caplog):
    project, truth = planted
    curation = Curation(project)
    curation.add_class("disc")
    curation.add_prototype("disc", "img0.tif", _box(truth["img0.tif"][0][0]))
    y, x = truth["img1.tif"][0][0]
    proto = curation.add_prototype("disc", "img1.tif", (x - 10, y - 20, x + 10, y + 20))
    assert "re-centred" in caplog.text
    x0, y0, x1, y1 = proto.box
    assert (x1 - x0, y1 - y0) == (32, 32) and proto.centre == (y, x)
    # small, in the corner: moved only as far as the border grid reaches (a quarter of the
    # 96 px window at scale 3, in whole 16 px steps: 16 / 3 px beyond the edge), so its centre
    # stays nearer the object
    assert project.geometry.margin == (16, 16) and project.geometry.scale == 3.0
    corner = curation.add_prototype("disc", "img1.tif", (0, 0, 10, 10))
    assert corner.box == pytest.approx((-16 / 3, -16 / 3, 32 - 16 / 3, 32 - 16 / 3))
    assert curation.prototype_box("img1.tif", (0, 0, 10, 10)) == corner.box  # what add_prototype stores
    curation.remove_prototype(corner.id)  # the stored box goes back in as it is (the TUI's undo)
    assert curation.add_prototype("disc", "img1.tif", corner.box).box == corner.box
    with pytest.raises(ConfigError, match="lies outside image"):  # beyond the grid's reach
        curation.add_prototype("disc", "img1.tif", (-9, -9, 23, 23))


def test_box_near_the_edge_stays_inside_the_image_without_the_border_grid(tmp_path):
    from conftest import write_planted

    write_planted(tmp_path / "images", 2)
    with Project.create(tmp_path / "proj", tmp_path / "images", backbone="efficientnet-lite0", border=False,
                        patch_size=32) as project:
        curation = Curation(project)
        curation.add_class("disc")
        assert curation.add_prototype("disc", "img1.tif", (0, 0, 10, 10)).box == (0.0, 0.0, 32.0, 32.0)
        with pytest.raises(ConfigError, match="lies outside image"):
            curation.add_prototype("disc", "img1.tif", (-8, -8, 24, 24))


@pytest.mark.parametrize("bright", [True, False])
def test_blobs_find_discs_of_their_size_in_both_polarities(bright):
    from simsearch import find_blobs

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:240, :320]
    image = rng.normal(0.5, 0.03, (240, 320))
    discs = [(60, 70, 9), (150, 220, 14), (180, 80, 6), (50, 250, 11)]
    for cy, cx, r in discs:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 0.9 if bright else 0.1
    blobs = find_blobs(image, count=10)
    for cy, cx, r in discs:
        nearest = int(np.argmin(np.hypot(blobs.ys - cy, blobs.xs - cx)))
        assert np.hypot(blobs.ys[nearest] - cy, blobs.xs[nearest] - cx) <= 3, (cy, cx)
        assert 0.6 * 2 * r <= blobs.sizes[nearest] <= 1.6 * 2 * r, (r, blobs.sizes[nearest])
    assert list(blobs.strengths) == sorted(blobs.strengths, reverse=True)
    assert len(find_blobs(np.full((50, 50), 0.5), count=10)) == 0  # nothing to find: none


def test_blobs_are_never_centred_on_the_image_edge():
    """An object cut by the image's edge, mirrored by the filter's border, looked like a whole
    blob centred on the edge: a hint label for a half object, which made a poor prototype (on
    planted particles 203 of 2,000 blobs lay on the edge, 42 of them on a particle)."""
    from simsearch import find_blobs

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:240, :320]
    image = rng.normal(0.5, 0.03, (240, 320))
    for cy, cx, r in [(120, 0, 10), (0, 160, 8), (239, 60, 9), (120, 200, 10)]:  # three cut by an edge, one whole
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 0.1
    blobs = find_blobs(image, count=20)
    assert np.hypot(blobs.ys - 120, blobs.xs - 200).min() <= 3  # the whole one is found
    assert min(blobs.ys.min(), blobs.xs.min(), 239 - blobs.ys.max(), 319 - blobs.xs.max()) >= 1


def test_free_background_places_are_judged_in_blocks_as_all_at_once(monkeypatch):
    """The first `count` candidates overlapping no occupied patch, judged a few candidates at a
    time (as on a slide, where all pairs would not fit in memory), are those of a plain loop
    over every pair; a candidate twice the patch's size reaches twice as far."""
    import simsearch.curation.session as session
    from simsearch.project.store import PatchRecord

    rng = np.random.default_rng(3)
    patches = [PatchRecord("img", float(y), float(x), level=float(level))
               for y, x, level in zip(rng.uniform(0, 500, 40), rng.uniform(0, 500, 40), rng.choice([1.0, 2.0], 40))]
    ys, xs = rng.uniform(0, 500, 300), rng.uniform(0, 500, 300)
    sizes = np.repeat(rng.choice([16.0, 32.0], 300)[:, None], 2, axis=1)

    def overlaps(i):
        return any(abs(ys[i] - p.y) < (sizes[i, 0] + 16 * p.level) / 2 and abs(xs[i] - p.x) < (sizes[i, 1] + 16 * p.level) / 2
                   for p in patches)

    want = [i for i in range(300) if not overlaps(i)]
    assert 20 < len(want) < 280
    monkeypatch.setattr(session, "_PAIRS_AT_ONCE", 7 * 40)  # seven candidates at a time
    for count in (5, len(want), 1000):
        assert session._first_free(patches, ys, xs, sizes, (16, 16), count).tolist() == want[:count]
    assert session._first_free([], ys, xs, sizes, (16, 16), 4).tolist() == [0, 1, 2, 3]


def test_a_deleted_class_comes_back_as_it_was(curated):
    """Deleting a class saves everything curated for it to deleted-classes/; restoring brings
    it back with the same ids, order and content, so the same training identity. A class of
    that name in the way, or an unreadable file, is refused naming the file."""
    from conftest import TINY
    from simsearch import training_identity

    project, _ = curated
    curation, store = Curation(project), project.store

    def state(name):
        return (curation.class_info(name), store.prototypes(name), store.patches(name, "positive"),
                store.patches(name, "negative"), store.noisy(name), [c.name for c in curation.classes()])

    before, identity = state("disc"), training_identity(project, TINY)
    assert before[2] and before[4]  # positives and noisy patches to lose
    saved = curation.delete_class("disc")
    assert saved.parent == project.layout.deleted_classes and saved.is_file()
    assert [c.name for c in curation.classes()] == ["cross"]
    with pytest.raises(ConfigError, match="unknown class 'disc'"):
        curation.class_info("disc")
    curation.add_class("disc")  # another class of that name in the way: refused, nothing changes
    with pytest.raises(ConfigError, match=f"{saved}: restore class: a class 'disc' exists again"):
        curation.restore_class(saved)
    assert saved.is_file() and not store.prototypes("disc")
    curation.delete_class("disc")
    restored = curation.restore_class(saved)
    assert restored == before[0] and state("disc") == before and training_identity(project, TINY) == identity
    assert not saved.exists()
    with pytest.raises(ConfigError, match=f"restore class: cannot read {saved}"):
        curation.restore_class(saved)
