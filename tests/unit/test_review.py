"""The review round: the model's own detections on undisplayed images, judged by the user,
feed the next training."""
import numpy as np
import pytest

from conftest import TINY
from simsearch import ConfigError, ProjectError
from simsearch.cli.main import main
from simsearch.inference.review import Review, select_for_review
from simsearch.training.loop import train, training_identity, training_records


def _unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_batch_is_not_many_copies_of_one_mistake():
    rng = np.random.default_rng(0)
    mistake = rng.normal(size=16)
    copies = _unit(mistake + rng.normal(scale=0.01, size=(10, 16)))  # ten near-identical items
    others = _unit(rng.normal(size=(30, 16)))
    vectors = np.concatenate([copies, others])
    # the copies sit nearest the threshold: ranked first by uncertainty
    confidences = np.concatenate([np.full(10, 0.5) + np.arange(10) * 1e-3, 0.5 + np.linspace(0.05, 0.45, 30)]).astype(np.float32)
    picks = select_for_review(confidences, vectors, threshold=0.5, count=5)
    assert len(picks) == 5 and picks[0] == 0  # the best-ranked copy leads
    assert sum(p < 10 for p in picks) == 1  # and is the only copy listed
    assert list(picks) == sorted(picks, key=lambda i: abs(confidences[i] - 0.5))  # listed most uncertain first
    confident = select_for_review(confidences, vectors, threshold=0.8, count=5, order="confident")
    assert all(confidences[confident] >= 0.8) and list(confidences[confident]) == sorted(confidences[confident], reverse=True)
    diverse = select_for_review(confidences, vectors, threshold=0.5, count=5, order="diverse")
    assert len(set(diverse.tolist())) == 5 and sum(p < 10 for p in diverse) <= 1
    few = select_for_review(confidences[:3], vectors[:3], threshold=0.5, count=5)
    assert sorted(few.tolist()) == [0, 1, 2]  # fewer candidates than asked: all of them
    assert len(select_for_review(np.zeros(0), np.zeros((0, 16)), threshold=0.5, count=5)) == 0


@pytest.mark.slow
def test_review_answers_feed_training_and_can_be_taken_back(curated):
    project, truth = curated
    with pytest.raises(ProjectError, match="no trained model"):
        Review(project)
    first = train(project, TINY, device="cpu")
    review = Review(project, device="cpu")
    with pytest.raises(ConfigError, match="no class 'nope'"):
        review.propose("nope")
    items = review.propose("disc", count=4)
    undisplayed = set(project.undisplayed)
    assert [i.number for i in items] == [1, 2, 3, 4] and {i.image_id for i in items} <= undisplayed
    assert all(i.answer is None for i in items)
    review.answer("disc", [1], "accepted")
    review.answer("disc", [2], "rejected")
    with pytest.raises(ConfigError, match=r"no item numbered \[9\]"):
        review.answer("disc", [9], "accepted")
    records = training_records(project, TINY)
    disc = records.names.index("disc")
    # accepted: a clean positive of disc; rejected: a negative of disc (either may be among the 20% held out to check)
    assert (_place(items[0]), disc) in records.clean + records.held_out
    assert (_place(items[1]), disc) in records.negatives + records.held_out_negatives
    changed = training_identity(project, TINY)
    assert changed != first.identity
    review.answer("disc", [1, 2], None)  # taken back: the curation is what it was
    assert training_identity(project, TINY) == first.identity
    review.answer("disc", [3], "accepted")
    again = review.propose("disc", count=4)  # a new batch: the answered item stays, unnumbered
    assert all(_place(i) != _place(items[2]) for i in again)
    assert [i.answer for i in project.store.review_items("disc", current_only=False) if i.number is None] == ["accepted"]
    retrained = train(project, TINY, device="cpu")
    assert not retrained.reused and retrained.identity == training_identity(project, TINY)


def test_review_from_the_command_line(curated, capsys):
    project, _ = curated
    train(project, TINY, device="cpu")
    project.close()
    run = lambda *args: main(["-q", *args, "--project", str(project.folder)])  # noqa: E731
    assert run("review", "--accept", "1") == 2
    assert "no batch listed yet" in capsys.readouterr().err
    assert run("review", "cross", "--count", "3", "--device", "cpu") == 0
    out = capsys.readouterr().out
    assert "review of cross" in out and "img" in out and "@" not in out  # images named as the user knows them
    assert run("review", "--accept", "1", "3", "--reject", "2") == 0
    out = capsys.readouterr().out
    assert "2 accepted, 1 rejected" in out
    assert run("review", "--accept", "2", "--reject", "2") == 2
    assert "more than one answer" in capsys.readouterr().err
    assert run("review", "--clear", "3") == 0
    assert "1 accepted, 1 rejected" in capsys.readouterr().out
    assert run("review", "cross", "--list") == 0
    assert "1 accepted, 1 rejected" in capsys.readouterr().out


def _place(item):
    from simsearch import PatchRecord

    return PatchRecord(item.image_id, float(item.y), float(item.x))


def test_candidates_of_an_image_with_nothing_above_the_floor_are_empty():
    from simsearch import PatchGeometry
    from simsearch.inference.review import MIN_CONFIDENCE, candidate_arrays

    geometry = PatchGeometry.for_patch(64)
    vectors = np.ones((6, 7, 5), np.float32)
    maps = np.zeros((6, 7, 2), np.float32)
    maps[2, 3, 1] = 0.9  # one peak, in the second class's map only
    arrays = candidate_arrays([(1.0, geometry, vectors, maps)])
    assert arrays["places0"].shape == (0, 4) and arrays["vectors0"].shape == (0, 5)
    assert arrays["places1"].shape == (1, 4) and arrays["vectors1"].shape == (1, 5)
    assert arrays["places1"][0, 2] == np.float32(0.9) and arrays["places1"][0, 3] == 1.0 and MIN_CONFIDENCE > 0


def test_candidates_over_a_pyramid_are_one_per_object_with_their_level():
    from simsearch import PatchGeometry
    from simsearch.inference.review import candidate_arrays

    base = PatchGeometry.for_patch(32)
    small, large = np.zeros((40, 40, 1), np.float32), np.zeros((20, 20, 1), np.float32)
    small[10, 10, 0], large[4, 4, 0] = 0.5, 0.75  # one object at two levels, centres (96, 96): the surer one stays
    small[8, 20, 0] = 0.625  # another object, 80 px away
    arrays = candidate_arrays([(1.0, base, np.ones((40, 40, 3), np.float32), small),
                               (2.0, base.at_scale(2), 2 * np.ones((20, 20, 3), np.float32), large)])
    assert arrays["places0"][:, 2:].tolist() == [[0.75, 2.0], [0.625, 1.0]]
    assert arrays["vectors0"][:, 0].tolist() == [2.0, 1.0]  # each vector from its own level


def test_candidates_of_a_slide_come_from_a_scratch_file_as_from_memory(curated, monkeypatch):
    """An image embedded in bands (a slide; here a small band budget stands in for its size)
    has its trained vectors spilled band by band to a scratch file, which is gone afterwards;
    its candidates equal those computed from the same bands held in memory."""
    import simsearch.features.embed as embed_module
    from simsearch.inference.review import candidate_arrays

    project, _ = curated
    train(project, TINY, device="cpu")
    review = Review(project, device="cpu")
    image_id = project.undisplayed[0]
    image = project.dataset.read(image_id)
    monkeypatch.setattr(embed_module, "BAND_BYTES", 3 * 20 * 112 * 4)  # a few grid rows per band
    review.folder.mkdir(parents=True, exist_ok=True)
    import simsearch.inference.review as review_module
    spills = []
    save = review_module.save_npy_rows
    monkeypatch.setattr(review_module, "save_npy_rows", lambda path, *a: (spills.append(path.name), save(path, *a)))
    spilled = review._image_candidates(image_id)
    assert spills == [".scratch-1.npy"]  # the vectors went to disk, not into one array
    predictor = review._predictor
    embedder = predictor.embedders[1.0]
    assert embedder.band_rows(*image.shape[:2]) < embedder.geometry.grid_shape(*image.shape[:2])[0]  # really in bands
    vectors, maps = predictor.vectors_and_maps(image)
    held = candidate_arrays([(1.0, embedder.geometry, vectors, maps[..., : len(review.class_names)])])
    assert spilled.keys() == held.keys() and len(held["places0"]) > 0
    for name in held:
        np.testing.assert_array_equal(spilled[name], held[name])
    assert not list(review.folder.glob(".scratch*"))
