"""The curation's public counts, lists and undo calls answer what the store answers, and the
terminal UI reaches the project store only through them (never `project.store`)."""
import re
from pathlib import Path

import pytest

import simsearch
from simsearch import BackgroundCounts, ClassCounts, ConfigError, Curation, PatchRecord

TUI = Path(__file__).resolve().parents[2] / "tui"

# `.store` as an attribute (project.store, curation.store, app.project.store), or fetched by name
STORE_USE = re.compile(r"\.store\b|getattr\([^)]*['\"]store['\"]")


def store_uses(text: str) -> list[int]:
    """Line numbers of `text` that reach for a project's store."""
    return [number for number, line in enumerate(text.splitlines(), start=1) if STORE_USE.search(line)]


def test_the_scan_catches_a_store_use():
    assert store_uses("a = 1\nn = len(self.app.project.store.prototypes(name))\n") == [2]
    assert store_uses("s = getattr(project, 'store')\n") == [1]
    assert store_uses("restore_place(state)  # the project store is the engine's\nself.restore = 1\n") == []


def test_the_tui_never_touches_the_project_store():
    files = sorted(TUI.rglob("*.py"))
    assert len(files) > 10, f"no TUI sources under {TUI}"
    found = [f"{path.relative_to(TUI.parent)}:{number}" for path in files for number in store_uses(path.read_text())]
    assert not found, "the TUI must use the engine's public API, not project.store: " + ", ".join(found)


def test_new_result_types_are_public():
    assert simsearch.ClassCounts is ClassCounts and simsearch.BackgroundCounts is BackgroundCounts
    assert {"ClassCounts", "BackgroundCounts"} <= set(simsearch.__all__)


def _expected_counts(store, name: str) -> ClassCounts:
    answers = [i.answer for i in store.review_items(name, current_only=False)]
    return ClassCounts(name, len(store.prototypes(name)), len(store.patches(name, "positive")),
                       len(store.patches(name, "negative")), store.noisy_count(name),
                       answers.count("accepted"), answers.count("rejected"))


def test_class_lists_and_counts_match_the_store(curated):
    project, _ = curated
    store, curation = project.store, Curation(project)
    assert curation.prototypes() == store.prototypes() and len(curation.prototypes()) == 2
    for name in ("disc", "cross"):
        assert curation.class_info(name) == store.class_info(name)
        assert curation.prototypes(name) == store.prototypes(name)
        assert curation.positives(name) == store.patches(name, "positive")
        assert curation.negatives(name) == store.patches(name, "negative") == []
        counts = curation.class_counts(name)
        assert counts == _expected_counts(store, name)
        assert (counts.prototypes, counts.positives, counts.negatives) == (1, 9, 0) and counts.noisy > 0
    with pytest.raises(ConfigError, match="unknown class"):
        curation.class_counts("nope")

    # a negative flag set and cleared through a patch record, as an undo does
    suggestion = curation.suggestions("disc")[2]
    curation.set_negative("disc", suggestion.record())
    assert curation.negatives("disc") == store.patches("disc", "negative") == [suggestion.record()]
    assert curation.class_counts("disc").negatives == 1 and not curation.class_info("disc").confirmed
    assert curation.suggestions("disc")[2].flagged
    curation.set_negative("disc", suggestion.record(), flagged=False)
    assert curation.negatives("disc") == [] and curation.class_counts("disc") == _expected_counts(store, "disc")


def test_confidence_threshold_is_set_without_touching_the_confirmation(curated):
    project, _ = curated
    curation = Curation(project)
    before = curation.class_info("disc")
    curation.set_confidence_threshold("disc", 0.7)
    after = project.store.class_info("disc")
    assert after.confidence_threshold == pytest.approx(0.7)
    assert (after.similarity_threshold, after.confirmed) == (before.similarity_threshold, before.confirmed)
    assert project.store.class_info("cross").confidence_threshold == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="outside"):
        curation.set_confidence_threshold("disc", 1.5)
    assert curation.class_info("disc").confidence_threshold == pytest.approx(0.7)


def test_restore_confirmation_puts_the_class_back(curated):
    project, _ = curated
    curation = Curation(project)
    before, earlier = curation.class_info("disc"), curation.positives("disc")
    confirmed = curation.confirm_class("disc", threshold=curation.suggestions("disc", threshold=-1.0)[3].similarity)
    assert len(curation.positives("disc")) == len(confirmed) == 4
    curation.restore_confirmation("disc", before.similarity_threshold, earlier, confirmed=before.confirmed)
    assert project.store.class_info("disc") == before
    assert project.store.patches("disc", "positive") == earlier
    curation.restore_confirmation("disc", before.similarity_threshold, earlier, confirmed=False)
    assert not project.store.class_info("disc").confirmed and curation.class_counts("disc").positives == 9


def test_an_undone_change_gets_the_confirmation_back(curated):
    """A threshold, a flag (which takes a positive out) or a prototype unconfirms the class; its
    undo (the reverse call, then `restore_confirmation` of the positives before, at the threshold
    as it is) confirms it again."""
    project, _ = curated
    curation = Curation(project)
    before, positives = curation.class_info("disc"), curation.positives("disc")
    assert before.confirmed
    suggestion = curation.suggestions("disc")[2].record()
    assert suggestion in positives
    prototype = curation.prototypes("disc")[0]
    changes = [(lambda: curation.set_threshold("disc", before.similarity_threshold + 0.01),
                lambda: curation.set_threshold("disc", before.similarity_threshold)),
               (lambda: curation.set_negative("disc", suggestion),
                lambda: curation.set_negative("disc", suggestion, flagged=False)),
               (lambda: curation.remove_prototype(prototype.id),
                lambda: curation.add_prototype("disc", prototype.image_id, prototype.box))]
    for change, undo in changes:
        change()
        assert not curation.class_info("disc").confirmed
        undo()
        curation.restore_confirmation("disc", None, positives, confirmed=True)
        assert curation.class_info("disc") == before
        assert curation.positives("disc") == positives and curation.negatives("disc") == []


def _background_expected(store) -> BackgroundCounts:
    every = store.background()
    return BackgroundCounts(len(every), sum(not flag for _, _, flag in every), len(store.clean_background()),
                            store.noisy_count(None))


def test_background_counts_flags_and_undone_confirmation_match_the_store(curated):
    project, _ = curated
    store, curation = project.store, Curation(project)
    assert curation.clean_background() == store.clean_background() and len(curation.clean_background()) == 10
    assert curation.unconfirmed_background() == []
    counts = curation.background_counts()
    assert counts == _background_expected(store)
    assert (counts.candidates, counts.flagged, counts.clean) == (10, 0, 10) and counts.noisy > 0

    # a few confirmations taken back: those are candidates again, the rest stays confirmed
    every = [p for p, _, _ in store.background()]
    curation.unconfirm_background(every[:4])
    assert curation.unconfirmed_background() == every[:4]
    assert curation.clean_background() == every[4:] == store.clean_background()
    assert curation.background_counts() == BackgroundCounts(10, 0, 6, counts.noisy)

    curation.set_not_background(every[1])
    assert curation.background_counts() == _background_expected(store)
    assert curation.background_counts().flagged == 1
    assert [c.is_background for c in curation.background_candidates()] == [True, False] + [True] * 8
    with pytest.raises(ConfigError, match="not a background candidate"):
        curation.set_not_background(PatchRecord(every[0].image_id, -5.0, -5.0))

    confirmed_before = store.background(confirmed_only=True)
    newly = curation.unconfirmed_background()  # what an undo of the next confirmation needs
    curation.confirm_background()
    assert curation.unconfirmed_background() == []
    assert len(curation.clean_background()) == 9  # the flagged one is not background
    curation.unconfirm_background(newly)
    assert store.background(confirmed_only=True) == confirmed_before
    assert curation.unconfirmed_background() == newly == every[:4]
    assert curation.background_counts().flagged == 1  # flags as they were
    curation.set_not_background(every[1], flagged=False)
    assert curation.background_counts() == BackgroundCounts(10, 0, 6, counts.noisy) == _background_expected(store)


def test_review_items_and_answers_match_the_store(curated):
    project, truth = curated
    store, curation = project.store, Curation(project)
    image = project.undisplayed[0]
    store.set_review_batch("disc", [PatchRecord(image, 40.0 + 10 * k, 50.0, 0.9 - 0.1 * k) for k in range(3)])
    assert curation.review_items("disc") == store.review_items("disc") and len(curation.review_items("disc")) == 3
    curation.answer_review("disc", [1, 3], "accepted")
    curation.answer_review("disc", [2], "rejected")
    assert [i.answer for i in curation.review_items("disc")] == ["accepted", "rejected", "accepted"]
    counts = curation.class_counts("disc")
    assert (counts.accepted, counts.rejected) == (2, 1) and counts == _expected_counts(store, "disc")
    with pytest.raises(ConfigError, match="no item numbered"):
        curation.answer_review("disc", [2, 9], None)  # all or none
    assert curation.class_counts("disc").rejected == 1
    curation.answer_review("disc", [2], None)
    assert curation.review_items("disc", current_only=False) == store.review_items("disc", current_only=False)
    assert (curation.class_counts("disc").accepted, curation.class_counts("disc").rejected) == (2, 0)
    assert curation.class_counts("cross") == _expected_counts(store, "cross")
    assert (curation.class_counts("cross").accepted, curation.class_counts("cross").rejected) == (0, 0)
    # by place, not number: a later batch renumbers (how an undo takes answers back)
    first = curation.review_items("disc")[0]
    store.set_review_batch("disc", [PatchRecord(image, 90.0, 60.0, 0.5)])
    assert curation.review_items("disc")[0].number == 1 and first.number == 1
    with pytest.raises(ConfigError, match="no item at"):
        curation.restore_review_answers("disc", [first, PatchRecord(image, 1.0, 2.0)], None)  # all or none
    assert curation.class_counts("disc").accepted == 2
    curation.restore_review_answers("disc", [first], None)
    after = {(i.y, i.x): i.answer for i in curation.review_items("disc", current_only=False)}
    assert after[(first.y, first.x)] is None and after[(90.0, 60.0)] is None and curation.class_counts("disc").accepted == 1
