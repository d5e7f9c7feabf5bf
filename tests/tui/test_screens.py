"""Pilot tests of every screen's key paths: a real Textual app on a real project (planted
discs and crosses), checked through the project store after the app has closed."""
import asyncio
import contextlib
import re
import shutil
import time
from dataclasses import replace

import numpy as np
import pytest

from conftest import TINY as CONFTEST_TINY, planted_project
from simsearch import Curation, Project, StageSettings, iter_train, saved_model, training_status

pytest.importorskip("textual")
from simsearch_tui.app import SimSearchApp  # noqa: E402
from simsearch_tui.dialogs import HintScreen, PromptScreen  # noqa: E402
from simsearch_tui.train import UP_TO_DATE  # noqa: E402
from simsearch_tui.widgets import PatchGrid  # noqa: E402
from simsearch_tui import thresholds  # noqa: E402

# the suite's tiny training (4 classifier copies) with the epochs these tests were written for
TINY = replace(CONFTEST_TINY, supcon=StageSettings(1, 16, 1e-3, 1, 0.5), classifier=StageSettings(5, 32, 1e-2, 10, 0.1),
               max_noisy=32)


def help_text(app) -> str:
    """The open help's text as the terminal shows it (its keys are a table: wrapped, not cut)."""
    from io import StringIO
    from rich.console import Console
    console = Console(width=80, file=StringIO(), record=True)
    console.print(app.screen.query_one("#help-text").content)
    return console.export_text()


async def wait_until(pilot, condition, timeout: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause()
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def open_step(pilot, app, key: str, screen_id: str):
    """Press a step's key and wait for its screen."""
    await pilot.press(key)
    await wait_until(pilot, lambda: app.screen.id == screen_id, what=f"{screen_id} after {key}")


@contextlib.asynccontextmanager
async def started(app, size: tuple[int, int], screen_id: str = "curate"):
    """The app in a pilot terminal of `size` (columns, rows), once it shows its first screen."""
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: app.screen.id == screen_id, what=f"the {screen_id} screen")
        yield pilot


async def wizard_refuses(pilot, app, fields: dict[str, str], message: str):
    """Fill the wizard's `fields` ({key: text}), press enter, expect the error dialog holding
    `message`, and close it: back on the wizard."""
    for key, text in fields.items():
        app.screen.query_one(f"#field-{key}").value = text
    await pilot.press("enter")
    await wait_until(pilot, lambda: app.screen.query("#error-text"), what=f"the error dialog for {fields}")
    assert message in str(app.screen.query_one("#error-text").render())
    await pilot.press("escape")
    await wait_until(pilot, lambda: app.screen.id == "wizard", what="the wizard again")


def keys_to(screen, y: float, x: float) -> list[str]:
    """The arrow keys that move a 32 px cursor box (a quarter box, 8 px, a key) onto (y, x)."""
    cy, cx = screen.cursor
    return ["down" if y > cy else "up"] * round(abs(y - cy) / 8) + ["right" if x > cx else "left"] * round(abs(x - cx) / 8)


async def review_batch(pilot, app):
    """The Review screen with a first batch drawn."""
    await open_step(pilot, app, "5", "review")
    screen = app.screen
    await pilot.press("r")
    await wait_until(pilot, lambda: screen.items and not screen.busy, what="a review batch")
    return screen


def run(scenario):
    asyncio.run(scenario())


@pytest.fixture
def fresh_project(tmp_path):
    """Planted images, two displayed, no class yet."""
    project, truth = planted_project(tmp_path, 4, displayed=("img0.tif", "img1.tif"))
    project.close()
    return tmp_path / "proj", truth


@pytest.fixture
def curated_project(tmp_path):
    """A class with a prototype, confirmed, and background confirmed: ready to train."""
    project, truth = planted_project(tmp_path, 4, displayed=("img0.tif", "img1.tif"))
    with project:
        curation = Curation(project)
        curation.add_class("disc", similarity_threshold=0.6)
        y, x = truth["img0.tif"][0][0]
        curation.add_prototype("disc", "img0.tif", (x - 16, y - 16, x + 16, y + 16))
        curation.confirm_class("disc")
        curation.propose_background(8)
        curation.confirm_background()
    return tmp_path / "proj", truth


@pytest.fixture
def trained_project(curated_project):
    folder, truth = curated_project
    with Project.open(folder) as project:
        for _ in iter_train(project, TINY.with_strategy("pos")):
            pass
    return folder, truth


def test_new_class_keyboard_prototype_threshold_flag_undo_confirm(fresh_project):
    folder, truth = fresh_project
    y, x = truth["img0.tif"][0][0]

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 32)) as pilot:
            screen = app.screen
            await pilot.press("N")
            await pilot.press(*"disc", "enter")
            await wait_until(pilot, lambda: [c.name for c in app.curation.classes()] == ["disc"], what="the class")
            for _ in range(3):  # 64 -> 51 -> 40 -> 32 px box, moved in steps of a quarter box
                await pilot.press("minus")
            assert screen.patch_size == (32, 32)
            await pilot.press(*keys_to(screen, y, x))
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(screen.suggestions) > 0, what="suggestions")
            [prototype] = app.project.store.prototypes("disc")
            py, px = prototype.centre
            assert abs(py - y) <= 4 and abs(px - x) <= 4
            await pilot.press("right_square_bracket", "left_curly_bracket")
            assert app.project.store.class_info("disc").similarity_threshold == pytest.approx(0.46)
            status = lambda: str(screen.query_one("#status").render())  # noqa: E731
            assert "space flags the wrong ones" in status() and "precision" not in status()  # no flag: no estimate
            await pilot.press("space")  # in the image: the suggestion under the cursor box
            await wait_until(pilot, lambda: len(app.project.store.patches("disc", "negative")) == 1, what="a negative")
            count = len(screen.suggestions)  # at most the share not flagged: the rest are not all checked
            await wait_until(pilot, lambda: f"precision ≤ {1 - 1 / count:.0%} above it" in status(), what="the estimate")
            await pilot.press("u")  # undo the flag
            await wait_until(pilot, lambda: not app.project.store.patches("disc", "negative"), what="the undo")
            await pilot.press("tab", "space")  # in the grid: the focused suggestion, at once after tab
            assert screen.query_one("#grid", PatchGrid).has_focus
            await pilot.press("c")
            await wait_until(pilot, lambda: app.project.store.class_info("disc").confirmed, what="confirmation")
            positives = app.project.store.patches("disc", "positive")
            assert positives
            await pilot.press("u")  # a confirmation can be undone: back to no positives, unconfirmed
            await wait_until(pilot, lambda: not app.project.store.class_info("disc").confirmed, what="the undone confirmation")
            assert app.project.store.patches("disc", "positive") == []
            await pilot.press("c")
            await wait_until(pilot, lambda: app.project.store.class_info("disc").confirmed, what="confirmation again")
            assert app.project.store.patches("disc", "positive") == positives
            await pilot.press("right_square_bracket")  # a change after confirming: the class shows it
            await wait_until(pilot, lambda: "changed: c confirms again" in str(screen.query_one("#status").render()),
                             what="the changed mark")
            assert not app.project.store.class_info("disc").confirmed
            await pilot.press("question_mark")
            assert "cursor box" in help_text(app)
            await pilot.press("escape")
            await pilot.press("q")

    run(scenario)
    with Project.open(folder, read_only=True) as again:  # everything was saved as it happened
        assert again.store.class_info("disc").similarity_threshold == pytest.approx(0.47)  # 0.46, then ] after confirming
        assert len(again.store.patches("disc", "negative")) == 1
        assert again.store.patches("disc", "positive")


def test_the_help_scrolls_from_the_keyboard(fresh_project):
    """At 80x24 the curation screen's keys do not fit in the help: the keys scroll it, and its
    border says which; esc still closes it."""
    from simsearch_tui.dialogs import HelpScreen, HelpText

    folder, _ = fresh_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (80, 24)) as pilot:
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.query(HelpText),
                             what="the help")
            text = app.screen.query_one(HelpText)
            await wait_until(pilot, lambda: text.max_scroll_y > 0, what="the help's layout")
            assert "PgDn" in str(text.border_subtitle)
            for key, where in (("pagedown", lambda y: y > 0), ("end", lambda y: y == text.max_scroll_y),
                               ("home", lambda y: y == 0), ("j", lambda y: y == 1), ("k", lambda y: y == 0),
                               ("space", lambda y: y > 1), ("up", lambda y: 0 < y < text.max_scroll_y)):
                await pilot.press(key)
                await wait_until(pilot, lambda: where(text.scroll_y) and not text.is_scrolling,
                                 what=f"the scroll after {key}")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen.id == "curate", what="the help closed")

    run(scenario)


def test_the_help_lists_the_focused_grids_keys_and_the_grid_its_page(curated_project):
    folder, _ = curated_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (80, 24)) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: len(screen.suggestions) > 0, what="suggestions")
            await pilot.press("tab")
            grid = screen.query_one("#grid", PatchGrid)
            assert grid.has_focus
            per_page = len(grid.page_items())
            assert grid.border_title == f"1-{per_page} of {grid.count}" and grid.count > per_page
            await pilot.press("pagedown")
            assert grid.border_title.startswith(f"{per_page + 1}-")
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: app.screen.query("#help-text"), what="the help")
            text = help_text(app)
            assert "grid: next page" in text and "grid: first patch" in text

    run(scenario)


def test_a_new_class_starts_at_its_first_suggestion(curated_project):
    folder, _ = curated_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (80, 24)) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: len(screen.suggestions) > 0, what="suggestions")
            grid = screen.query_one("#grid", PatchGrid)
            await pilot.press("tab", "right")
            assert grid.focus_index == 1
            await pilot.press("N", *"cross", "enter")
            await wait_until(pilot, lambda: screen.class_name == "cross", what="the new class")
            assert grid.focus_index == 0

    run(scenario)


def test_reopening_returns_to_the_same_place(fresh_project):
    folder, _ = fresh_project
    with Project.open(folder) as project:
        curation = Curation(project)
        curation.add_class("disc")
        curation.add_class("cross")

    place = {}

    async def first():
        app = SimSearchApp(folder)
        async with started(app, (80, 24)) as pilot:
            screen = app.screen
            await pilot.press("full_stop", "n")
            await pilot.press("enter")  # a prototype of cross at the box
            await wait_until(pilot, lambda: app.project.store.prototypes("cross"), what="the prototype")
            await pilot.press("right", "right", "down", "z", "right_square_bracket")
            await wait_until(pilot, lambda: len(screen.suggestions) > 0, what="suggestions")
            await pilot.press("tab", "right")  # the grid's second suggestion (its image may be another)
            await pilot.press("n")  # and the next image
            place.update(cursor=screen.cursor, image=screen.image_index, zooms={i: screen.viewport(i).zoom for i in screen.displayed},
                         focus=screen.query_one("#grid", PatchGrid).focus_index)
            await open_step(pilot, app, "3", "background")

    async def second():
        app = SimSearchApp(folder)
        async with started(app, (80, 24), "background") as pilot:
            await open_step(pilot, app, "2", "curate")
            screen = app.screen
            assert screen.class_name == "cross"  # the second class
            assert screen.image_index == place["image"] != 0
            assert screen.cursor == pytest.approx(place["cursor"], abs=0.1)
            assert {i: screen.viewport(i).zoom for i in screen.displayed} == place["zooms"] and sorted(place["zooms"].values()) == [1, 2]
            await wait_until(pilot, lambda: len(screen.suggestions) > 0, what="suggestions")
            assert screen.grid_mode and screen.query_one("#grid", PatchGrid).focus_index == place["focus"] == 1
            # the undo history outlives the process: the threshold change, then the prototype
            await pilot.press("u")
            assert app.project.store.class_info("cross").similarity_threshold == pytest.approx(0.5)
            await pilot.press("u")
            assert not app.project.store.prototypes("cross")

    run(first)
    run(second)


def test_undoing_a_change_to_a_confirmed_class_confirms_it_again(curated_project):
    folder, _ = curated_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 32)) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: len(screen.suggestions) > 0, what="suggestions")
            before, positives = app.curation.class_info("disc"), app.curation.positives("disc")
            assert before.confirmed
            await pilot.press("right_square_bracket", "right_square_bracket")  # a threshold slip: two presses
            assert not app.curation.class_info("disc").confirmed
            await pilot.press("tab", "space")  # and a flag, on a positive (the most similar): it takes it out
            await wait_until(pilot, lambda: app.curation.negatives("disc"), what="the flag")
            assert len(app.curation.positives("disc")) == len(positives) - 1
            await pilot.press("u", "u")  # the flag, then the threshold: the class as it was, confirmed
            await wait_until(pilot, lambda: app.curation.class_info("disc") == before, what="the confirmation back")
            await wait_until(pilot, lambda: "changed: c confirms again" not in str(screen.query_one("#status").render()),
                             what="no changed mark")
            assert not app.curation.negatives("disc") and app.curation.positives("disc") == positives

    run(scenario)


def test_background_flag_and_confirm(curated_project):
    folder, _ = curated_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            app.project.store.confirm_background(confirmed=False)  # the fixture's confirmation taken back
            await open_step(pilot, app, "3", "background")
            await pilot.press("b")
            await pilot.press("enter")  # the default count
            await wait_until(pilot, lambda: len(app.screen.candidates) > 8, what="new candidates")
            first = app.screen.candidates[0]
            status = app.screen.query_one("#bg-status")
            assert "before c: flag every candidate that shows an object" in str(status.render())
            await pilot.press("space")
            await pilot.press("c")
            await pilot.pause()
            assert "before c" not in str(status.render())  # nothing left to check
            background = app.project.store.background(confirmed_only=True)
            flagged = [p for p, _, is_background in background if not is_background]
            assert len(flagged) == 1 and (flagged[0].y, flagged[0].x) == (first.y, first.x)
            steps = lambda: str(app.screen.query_one("#steps").render())  # noqa: E731
            assert "3 Background ✔" in steps()
            count = len(app.screen.candidates)
            await pilot.press("b")  # more candidates: not checked yet
            await wait_until(pilot, lambda: isinstance(app.screen, PromptScreen), what="the prompt")
            app.screen.query_one("#answer").value = "30"
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.screen.id == "background" and len(app.screen.candidates) > count,
                             what="more candidates")
            await wait_until(pilot, lambda: "3 Background ~" in steps(), what="the step marked as changed")
            await pilot.press("u")  # the confirmation undone: candidates again, the flag kept
            await wait_until(pilot, lambda: not app.project.store.background(confirmed_only=True), what="the undo")
            assert [(p.y, p.x) for p, _, b in app.project.store.background() if not b] == [(first.y, first.x)]

    run(scenario)


def test_page_by_page_marking_with_letters(curated_project):
    folder, _ = curated_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            await pilot.press("3", "b", "enter")
            await wait_until(pilot, lambda: app.screen.id == "background" and len(app.screen.candidates) > 8, what="candidates")
            screen = app.screen
            grid = screen.query_one("#bg-grid", PatchGrid)
            page = grid.page_items()
            assert 1 < len(page) < len(screen.candidates)
            await pilot.press("m")
            await wait_until(pilot, lambda: len(grid.query(".hint")) == len(page), what="a letter on every tile")
            await pilot.press("s", "a")  # the second and first tiles: not background
            await pilot.pause()
            assert [not c.is_background for c in screen.candidates[:3]] == [True, True, False]
            await pilot.press("space")  # the next page
            await wait_until(pilot, lambda: grid.page_start() == len(page), what="the next page")
            await pilot.press("a", "escape")  # its first tile; esc ends the marking
            await pilot.pause()
            assert [i for i, c in enumerate(screen.candidates) if not c.is_background] == [0, 1, len(page)]
            assert not grid.query(".hint")
            await pilot.press("u")  # each mark undoes on its own
            await pilot.pause()
            assert [i for i, c in enumerate(screen.candidates) if not c.is_background] == [0, 1]

    run(scenario)


def test_start_and_cancel_training(curated_project):
    folder, _ = curated_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            await open_step(pilot, app, "4", "train")
            screen = app.screen
            await pilot.press("s", "s", "s")  # strategy pos: no noisy extraction
            assert screen.strategy == "pos"
            await pilot.press("f", "f")  # from the last model, and back: from the pretrained backbone
            assert not screen.from_last and "from the pretrained backbone" in str(screen.query_one("#train-settings").render())
            screen.show_stage("classifier", 1, 1, "epoch 40/40")  # as a run before this one left it
            await pilot.press("t")
            assert "epoch" not in str(screen.query_one("#label-classifier").render())  # not this run's
            assert "not in this strategy" in str(screen.query_one("#label-selflearn").render())
            await wait_until(pilot, lambda: "epoch" in str(screen.query_one("#label-supcon").render()), what="training progress")
            await pilot.press("x")
            await wait_until(pilot, lambda: not screen.running, what="the cancel")
            assert not training_status(app.project).has_model

    run(scenario)


def test_the_training_screen_shows_the_saved_models_stages(trained_project):
    folder, _ = trained_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            await open_step(pilot, app, "4", "train")
            screen = app.screen
            metrics = saved_model(app.project).metrics  # strategy pos: supervised contrastive, the classifier
            for stage in ("noisy", "selflearn", "supcon", "classifier", "probe"):
                label, bar = str(screen.query_one(f"#label-{stage}").render()), screen.query_one(f"#bar-{stage}")
                losses = metrics.get("selflearn" if stage == "noisy" else stage)
                if losses:  # finished, as the saved model records it: not 0 % as if nothing had trained
                    assert bar.percentage == 1 and f"{len(losses)} epochs  loss {losses[-1]:.3f}" in label, label
                else:
                    assert bar.percentage == 0 and "(not in the saved model)" in label, label
            assert {"supcon", "classifier"} <= set(metrics)

    run(scenario)


def test_thresholds_say_their_counts_are_a_previews(trained_project, monkeypatch):
    """The counts come from the displayed images and a few more: where that is not the whole
    dataset the side panel says of how many, and which step does them all."""
    folder, _ = trained_project
    monkeypatch.setattr(thresholds, "PREVIEW_IMAGES", 1)  # 2 displayed + 1 of the 4 images

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (80, 24)) as pilot:
            await open_step(pilot, app, "6", "thresholds")
            screen = app.screen
            await wait_until(pilot, lambda: len(screen.maps) == 3, what="the detection maps")
            side = str(screen.query_one("#th-side").render())
            assert "on 3/3 images (2 displayed)\nof 4: Run (7) does them all\nimage" in side, side

    run(scenario)


def test_confidence_threshold_and_export(trained_project, tmp_path):
    folder, _ = trained_project
    out = tmp_path / "results"

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            await open_step(pilot, app, "6", "thresholds")
            screen = app.screen
            await wait_until(pilot, lambda: len(screen.maps) == 4, what="the detection maps")  # 2 displayed, 2 more
            kept = app.project.store.class_info("disc").confidence_threshold
            app.curation.set_confidence_threshold("disc", 0.0)  # every peak, the border grid's edge too
            boxes = [(d.box, app.project.dataset.by_id(image_id)) for image_id in screen.maps for d in screen.detections(image_id)]
            assert any(box[0] == 0 or box[1] == 0 for box, _ in boxes)  # some at the edge: cut to the image
            assert all(0 <= x0 < x1 <= r.width and 0 <= y0 < y1 <= r.height for (x0, y0, x1, y1), r in boxes)
            app.curation.set_confidence_threshold("disc", kept)
            side = str(screen.query_one("#th-side").render())
            assert "image disc" in side and "review (5) to estimate precision" in side  # the table has its header
            assert "on 4/4 images (2 displayed)\nimage" in side  # every image of the dataset: no "of N" line
            assert side.splitlines()[1] == "[ ] ±0.01  { } ±0.05  , . class"  # what the keys do, on one line
            await pilot.press("p")  # the last image: an undisplayed one, as a preview
            bar = str(screen.query_one("#th-bar").render())
            # the keys before the file's name, which a narrow terminal cuts first
            assert bar.startswith("image 4/4 (undisplayed) n/p") and bar.endswith(".tif"), bar
            assert "6 Thresholds ✔" in str(screen.query_one("#steps").render())
            before = app.project.store.class_info("disc").confidence_threshold
            await pilot.press("right_curly_bracket")
            assert app.project.store.class_info("disc").confidence_threshold == pytest.approx(before + 0.05)
            await open_step(pilot, app, "7", "run")
            for key, answer in (("i", str(out / "nowhere")), ("o", str(folder / "project.yaml"))):  # refused on entry
                await pilot.press(key)
                await wait_until(pilot, lambda: isinstance(app.screen, PromptScreen), what="the prompt")
                app.screen.query_one("#answer").value = answer
                await pilot.press("enter")
                await wait_until(pilot, lambda: app.screen.id == "run", what="the run screen")
            assert app.screen.images is None and app.screen.output != folder / "project.yaml"
            app.remember_place(output=str(out))
            await pilot.press("S", "r")  # with segmentation: each class's area too
            await wait_until(pilot, lambda: (out / "summary.csv").is_file() and not app.screen.running, what="the export")
            table = app.screen.query_one("#run-summary")
            assert table.row_count == 4
            assert [str(column.label) for column in table.columns.values()] == ["image", "found", "disc", "disc area"]
            assert str(table.get_row_at(0)[-1]).endswith("%") and table.virtual_size.width <= 80  # fits 80 columns
            assert app.screen.query_one("#run-bar").percentage == 1  # finished: the bar is full

    run(scenario)
    assert (out / "detections.csv").is_file() and (out / "manifest.json").is_file()


def test_review_the_models_detections_then_train_again(trained_project):
    folder, _ = trained_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            screen = await review_batch(pilot, app)
            undisplayed = set(app.project.undisplayed)
            assert {item.image_id for item in screen.items} <= undisplayed
            await pilot.press("a", "x")  # the first accepted, the second rejected (the focus moves on)
            answers = [item.answer for item in app.project.store.review_items("disc")]
            assert answers[:2] == ["accepted", "rejected"] and set(answers[2:]) <= {None}
            status = screen.query_one("#rv-status")
            assert re.search(r"\(o\)  threshold \d\.\d\d  1 accepted, 1 rejected$", str(status.render()).splitlines()[0])
            assert "5 Review 2" in str(screen.query_one("#steps").render())
            await pilot.press("u")  # undo takes the rejection back
            assert [item.answer for item in app.project.store.review_items("disc")][1] is None
            assert "5 Review 1" in str(screen.query_one("#steps").render())
            page = screen.query_one("#rv-grid", PatchGrid).page_items()
            await pilot.press("m", "s")  # page-wise: reject the second
            await pilot.pause()
            assert "5 Review 2" in str(screen.query_one("#steps").render())
            await pilot.press("space")  # and accept the rest of the page
            await pilot.pause()
            answers = [item.answer for item in app.project.store.review_items("disc")]
            assert answers[1] == "rejected"
            assert all(a == "accepted" for i, a in enumerate(answers[: len(page)]) if i != 1)
            await pilot.press("escape")
            before = training_status(app.project).model_stamp
            app.remember_place(strategy="pos")
            await pilot.press("t")  # train again on the answers
            await wait_until(pilot, lambda: app.screen.id == "train" and app.screen.running, what="training again")
            await wait_until(pilot, lambda: not app.screen.running, timeout=300, what="the training")
            assert training_status(app.project).model_stamp != before  # a new model, not the old one reused
            await open_step(pilot, app, "6", "thresholds")
            await wait_until(pilot, lambda: len(app.screen.maps) == 4, what="the detection maps")
            threshold = app.project.store.class_info("disc").confidence_threshold
            above = [i.answer for i in app.project.store.review_items("disc", current_only=False) if i.answer and i.confidence >= threshold]
            side = str(app.screen.query_one("#th-side").render()).splitlines()
            precision = f" disc         ≈ {above.count('accepted') / len(above):.0%}  {above.count('accepted')} of {len(above)}"
            assert side[side.index("precision at the threshold") + 2] == precision, side
            assert max(len(line) for line in side) <= 32  # no line wraps in the panel

    run(scenario)


def test_review_marks_never_turn_a_rejection_into_an_acceptance(trained_project):
    folder, _ = trained_project

    async def scenario():
        app = SimSearchApp(folder)
        told = []
        app.notify = lambda message, **_: told.append(str(message))
        async with started(app, (100, 30)) as pilot:
            screen = await review_batch(pilot, app)
            page = screen.grid.page_items()
            assert 2 < len(page) < 16  # u is no label
            await pilot.press("a", "x")  # #1 accepted, #2 rejected
            # a letter on the rejected #2: it stays rejected; space accepts the rest
            await pilot.press("m", "s", "space")
            await pilot.pause()
            answers = [item.answer for item in app.curation.review_items("disc")]
            assert answers[1] == "rejected"
            assert all(a == "accepted" for i, a in enumerate(answers[: len(page)]) if i != 1)
            assert any("#2 was already rejected" in message for message in told)
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, HintScreen), what="the end of the marking")
            # a key that is no label ends the marking and acts: u undoes the page's acceptance
            await pilot.press("m", "u")
            await wait_until(pilot, lambda: not isinstance(app.screen, HintScreen), what="the end of the marking")
            await pilot.pause()
            answers = [item.answer for item in app.curation.review_items("disc")]
            assert answers[:2] == ["accepted", "rejected"] and set(answers[2:]) <= {None}

    run(scenario)


@pytest.fixture
def tiny_presets(monkeypatch):
    """The presets train as the fixtures' models were trained (TINY): a model can be up to date with the keys' settings."""
    import simsearch

    monkeypatch.setattr(simsearch.TrainSettings, "preset", staticmethod(lambda _, strategy: TINY.with_strategy(strategy)))


def test_the_step_bar_marks_a_model_out_of_date(trained_project, tiny_presets):
    """4 Train shows ~ instead of ✔ while the Train screen says the curation or the settings
    changed since the model was trained: after another strategy, or a new prototype."""
    folder, _ = trained_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            app.remember_place(strategy="pos")  # the model's settings: up to date
            steps = lambda: str(app.screen.query_one("#steps").render())  # noqa: E731
            await open_step(pilot, app, "4", "train")
            await wait_until(pilot, lambda: "4 Train ✔" in steps(), what="an up-to-date model")
            assert "up to date" in str(app.screen.query_one("#train-settings").render())
            await pilot.press("s")
            assert "changed" in str(app.screen.query_one("#train-settings").render())
            await wait_until(pilot, lambda: "4 Train ~" in steps(), what="the model out of date with the settings")
            await pilot.press(*["s"] * 4)  # round to pos again
            await wait_until(pilot, lambda: "4 Train ✔" in steps(), what="the model up to date again")
            await open_step(pilot, app, "2", "curate")
            await wait_until(pilot, lambda: len(app.screen.suggestions) > 0, what="suggestions")
            await pilot.press("enter")  # a new prototype: other training records
            await wait_until(pilot, lambda: len(app.project.store.prototypes("disc")) == 2, what="the prototype")
            await wait_until(pilot, lambda: "4 Train ~" in steps(), what="the model marked out of date")

    run(scenario)


def test_the_review_grid_focus_comes_back_after_reopening(trained_project):
    folder, _ = trained_project

    async def first():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            await open_step(pilot, app, "5", "review")
            await pilot.press("r")
            await wait_until(pilot, lambda: app.screen.items and not app.screen.busy, what="a review batch")
            await pilot.press("right", "right")
            assert app.screen.grid.focus_index == 2

    async def second():
        app = SimSearchApp(folder)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: app.screen.id == "review" and app.screen.items,
                             what="the review screen again")
            assert app.screen.grid.focus_index == 2

    run(first)
    run(second)


def test_an_up_to_date_model_names_the_keys_of_the_next_steps(trained_project):
    folder, _ = trained_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            for words, screen_id in {"review": "review", "set thresholds": "thresholds"}.items():
                await open_step(pilot, app, "4", "train")
                # each key the line names opens that step
                await open_step(pilot, app, re.search(re.escape(words) + r"[^(]*\((\d)\)", UP_TO_DATE).group(1), screen_id)

    run(scenario)


def test_wizard_creates_a_project(tmp_path):
    from conftest import write_planted

    write_planted(tmp_path / "images", 8)
    folder = tmp_path / "new-project"

    async def scenario():
        app = SimSearchApp(tmp_path / "images")
        async with started(app, (80, 24), "wizard") as pilot:
            app.screen.query_one("#field-folder").value = str(folder)
            app.screen.query_one("#field-displayed").value = "2"
            app.screen.query_one("#field-backbone").value = "efficientnet-lite0"
            await wizard_refuses(pilot, app, {"flat_field": "dust"},
                                 "flat_field: 'dust' is not one of none, divide, subtract, auto")
            await wizard_refuses(pilot, app, {"flat_field": "divide", "scales": "0.5,x"},
                                 "scales: '0.5,x' is not a comma-separated list of numbers")
            # "40" typed after the 6: more than the 8 images
            await wizard_refuses(pilot, app, {"scales": "Auto", "displayed": "640"},
                                 "displayed images: count 640 is outside 1..8")
            app.screen.query_one("#field-displayed").value = "2"
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.project is not None and app.screen.id == "curate", what="the new project")

    run(scenario)
    with Project.open(folder, read_only=True) as project:
        assert len(project.displayed) == 2 and project.normalization.flat_field.mode == "divide"
        assert project.automatic_scales


def test_wizard_takes_a_weights_file(tmp_path):
    from conftest import write_planted
    from simsearch import load_backbone

    write_planted(tmp_path / "images", 3)
    weights = tmp_path / "my-weights.pth"
    shutil.copy(load_backbone("efficientnet-lite0").spec.weights_path, weights)
    folder = tmp_path / "new-project"

    async def scenario():
        app = SimSearchApp(tmp_path / "images")
        async with started(app, (80, 24), "wizard") as pilot:
            app.screen.query_one("#field-folder").value = str(folder)
            app.screen.query_one("#field-backbone").value = "efficientnet-lite0"
            await wizard_refuses(pilot, app, {"weights": str(tmp_path / "missing.pth")}, "missing.pth")
            app.screen.query_one("#field-weights").value = str(weights)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.project is not None and app.screen.id == "curate", what="the new project")

    run(scenario)
    with Project.open(folder, read_only=True) as project:
        assert project.backbone_spec.weights_path == str(weights)


def test_engine_errors_show_a_dialog_not_a_traceback(tmp_path):
    from conftest import write_planted

    write_planted(tmp_path / "images", 2)

    async def scenario():
        app = SimSearchApp(tmp_path / "images")
        async with started(app, (80, 24), "wizard") as pilot:
            app.screen.query_one("#field-displayed").value = "many"
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.screen.query("#error-text"), what="the error dialog")
            assert "displayed images: 'many' is not a whole number" in str(app.screen.query_one("#error-text").render())

    run(scenario)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_every_screen_fits_the_terminal(trained_project, size):
    folder, _ = trained_project
    width, height = size

    async def scenario():
        app = SimSearchApp(folder)
        async with app.run_test(size=size) as pilot:
            for key, name in zip("1234567", ["dataset", "curate", "background", "train", "review", "thresholds", "run"]):
                await pilot.press(key)
                await wait_until(pilot, lambda: app.screen.id == name, what=name)
                await pilot.pause()
                for widget in app.screen.query("StepBar, Footer, ImageView, PatchGrid"):
                    region = widget.region
                    assert region.height >= 1 and region.right <= width and region.bottom <= height, (name, widget, region)
                    if type(widget).__name__ in ("ImageView", "PatchGrid"):
                        assert region.height >= 3 and region.width >= 20, (name, widget, region)

    run(scenario)


def test_hint_mode_puts_the_box_on_an_object_in_three_keys(fresh_project):
    folder, truth = fresh_project
    with Project.open(folder) as project:
        Curation(project).add_class("disc")
    (y, x), *_ = truth["img0.tif"][0]

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (80, 24)) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: screen.query_one("#image").rgb is not None, what="the image")
            await pilot.press("f")
            await wait_until(pilot, lambda: screen.query(".hint"), what="the hint labels")
            assert {str(hint.render()) for hint in screen.query(".hint")} <= set(screen.hint_targets)
            cells = [hint.styles.offset for hint in screen.query(".hint")]
            cells = [(int(o.x.value), int(o.y.value)) for o in cells]
            assert len(cells) == len(screen.hint_targets) and not any(  # no label hides another
                a[1] == b[1] and abs(a[0] - b[0]) < 2 for i, a in enumerate(cells) for b in cells[i + 1:])
            label = min(screen.hint_targets, key=lambda k: np.hypot(screen.hint_targets[k][0] - y, screen.hint_targets[k][1] - x))
            assert len(label) == 1
            await pilot.press(label, "enter")  # f, the label, enter: three keys for a prototype
            await wait_until(pilot, lambda: app.project.store.prototypes("disc"), what="the prototype")
            assert not screen.query(".hint")
            (prototype,) = app.project.store.prototypes("disc")
            py, px = prototype.centre
            assert np.hypot(py - y, px - x) <= 4
            assert 16 <= prototype.box[2] - prototype.box[0] <= 32  # sized to the 18 px disc, with a rim
            await pilot.press("f", "escape")  # esc leaves hint mode, nothing changes
            assert not screen.query(".hint") and len(app.project.store.prototypes("disc")) == 1

    run(scenario)


def test_a_box_drawn_with_the_mouse_becomes_the_prototype(fresh_project):
    folder, _ = fresh_project
    with Project.open(folder) as project:
        Curation(project).add_class("disc")

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 32)) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: screen.query_one("#image").rgb is not None, what="the image")
            view = screen.query_one("#image")
            left, top = view.content_region.x - view.region.x, view.content_region.y - view.region.y  # the border
            width, height = view.size
            (ax, ay), (bx, by) = (width * 3 // 10, height * 3 // 10), (width * 6 // 10, height * 6 // 10)  # inside the image
            (y0, x0), (y1, x1) = view.image_point(ax, ay), view.image_point(bx, by)
            cell = max(view.image_point(ax + 1, ay + 1)[1] - x0, view.image_point(ax + 1, ay + 1)[0] - y0)  # px per cell
            await pilot.mouse_down("#image", offset=(ax + left, ay + top))
            await pilot.mouse_up("#image", offset=(bx + left, by + top))
            await pilot.pause()
            side = max(x1 - x0, y1 - y0)
            assert abs(screen.patch_size[0] - side) <= cell
            assert screen.cursor == pytest.approx(((y0 + y1) / 2, (x0 + x1) / 2), abs=cell)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.project.store.prototypes("disc"), what="the prototype")
            x0, y0, x1, y1 = app.project.store.prototypes("disc")[0].box
            assert x1 - x0 == pytest.approx(screen.patch_size[1], abs=1)

    run(scenario)


def test_rename_delete_and_undelete_a_class(fresh_project):
    folder, _ = fresh_project
    with Project.open(folder) as project:
        curation = Curation(project)
        curation.add_class("disc")
        curation.add_class("cross")

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 32)) as pilot:
            await pilot.press("r")
            await wait_until(pilot, lambda: app.screen.query("#answer"), what="the prompt")
            app.screen.query_one("#answer").value = "round"
            await pilot.press("enter")
            await wait_until(pilot, lambda: [c.name for c in app.curation.classes()] == ["round", "cross"], what="the rename")
            await pilot.press("full_stop", "d")
            await pilot.press("n")  # no: nothing happens
            assert [c.name for c in app.curation.classes()] == ["round", "cross"]
            await pilot.press("d", "y")
            await wait_until(pilot, lambda: [c.name for c in app.curation.classes()] == ["round"], what="the delete")
            assert app.screen.class_name == "round"
            await pilot.press("u")  # undo brings the class back, with its place among the classes
            await wait_until(pilot, lambda: [c.name for c in app.curation.classes()] == ["round", "cross"], what="the undo")
            assert not list(app.project.layout.deleted_classes.iterdir())  # its saved file is used up

    run(scenario)


def test_a_project_open_elsewhere_is_a_dialog_then_exit(fresh_project):
    folder, _ = fresh_project

    async def scenario():
        app = SimSearchApp(folder)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.screen.query("#error-text"), what="the error dialog")
            text = str(app.screen.query_one("#error-text").render())
            assert "open" in text and "Traceback" not in text
            await pilot.press("escape")
            await wait_until(pilot, lambda: not app.is_running, what="the exit")

    with Project.open(folder):  # another writer holds the project
        run(scenario)


def test_dataset_screen_channels_as_typed_and_a_bad_list_in_the_error_dialog(fresh_project):
    from simsearch_tui.dialogs import ErrorScreen

    folder, _ = fresh_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 32)) as pilot:
            await open_step(pilot, app, "1", "dataset")
            await pilot.press("c", "ctrl+u", *"0 x", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the error dialog")
            assert "'0 x' is not a list of channel numbers" in app.screen.message
            assert app.screen.heading == "Not done"  # the input, not the program: "Something went wrong" is for bugs
            await pilot.press("escape")
            await pilot.press("c", "ctrl+u", *" 0, ", "enter")
            await wait_until(pilot, lambda: app.project.channels == (0,), what="the channels")
            app.show_error(RuntimeError("a bug"))  # what no input explains
            await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the bug's dialog")
            assert app.screen.heading == "Something went wrong" and "report" in app.screen.hint

    run(scenario)


def test_dataset_screen_sets_the_object_sizes(fresh_project):
    """`s` on the Dataset screen sets the scale pyramid, as `--scales` does: levels, auto, or
    one again; the summary says which, with the patch sides; a bad list gets the dialog."""
    from simsearch_tui.dialogs import ErrorScreen

    folder, _ = fresh_project
    with Project.open(folder) as project:
        project.set_patch_size(32)

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 32)) as pilot:
            await open_step(pilot, app, "1", "dataset")
            summary = lambda: str(app.screen.query_one("#summary").render())  # noqa: E731
            assert "Object sizes (s): one, the patch's" in summary()
            await pilot.press("s", *"2,0.5", "enter")
            await wait_until(pilot, lambda: app.project.scales == (0.5, 1.0, 2.0), what="the levels")
            assert "Object sizes (s): 0.5, 1, 2 x the patch (16/32/64 px)" in summary()
            await pilot.press("s", "ctrl+u", *"0.5;2", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the error dialog")
            assert "scales: '0.5;2'" in app.screen.message
            await pilot.press("escape")
            await pilot.press("s", "ctrl+u", *"auto", "enter")
            await wait_until(pilot, lambda: app.project.automatic_scales, what="auto")
            assert "auto, from the prototype boxes" in summary()
            assert app.get_screen("curate").patch_size == (32, 32)  # the free box starts at the patch size given
            await pilot.press("s", "ctrl+u", "enter")
            await wait_until(pilot, lambda: not app.project.automatic_scales and app.project.scales == (1.0,), what="one level")

    run(scenario)
    with Project.open(folder, read_only=True) as project:
        assert project.scales == (1.0,) and not project.automatic_scales


def test_over_a_scale_pyramid_plus_and_minus_step_the_box_through_its_levels(fresh_project):
    folder, truth = fresh_project
    with Project.open(folder) as project:
        project.set_scales("0.5,1,2")
        curation = Curation(project)
        curation.add_class("disc")
        y, x = truth["img0.tif"][0][0]
        curation.add_prototype("disc", "img0.tif", (x - 16, y - 16, x + 16, y + 16))  # fixes the patch: 32 px

    async def scenario():
        app = SimSearchApp(folder)
        told = []
        app.notify = lambda message, **_: told.append(str(message))
        async with started(app, (100, 32)) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: len(screen.suggestions) > 0, what="the suggestions")
            assert screen.patch_size == (32, 32)
            await pilot.press("plus")
            assert screen.patch_size == (64, 64)
            await pilot.press("plus")  # no level above: the box stays, the user is told the sizes
            assert screen.patch_size == (64, 64)
            assert "the box sizes are the scale pyramid's: 16/32/64 px (+ and - step through them)" in told
            await pilot.press("minus", "minus")
            assert screen.patch_size == (16, 16)
            assert str(screen.query_one("#imagebar").render()).startswith("box 16 of 16/32/64 px +-")
            screen.cursor = (float(truth["img1.tif"][0][1][0]), float(truth["img1.tif"][0][1][1]))
            await pilot.press("plus", "plus", "enter")
            await wait_until(pilot, lambda: len(app.project.store.prototypes("disc")) == 2, what="the second prototype")
            shown = {tuple(int(v) for v in size) for size in screen.suggestions.sizes}
            assert shown <= {(16, 16), (32, 32), (64, 64)}
        return screen.level

    run(scenario)
    with Project.open(folder) as project:
        sides = sorted(round(p.box[2] - p.box[0]) for p in project.store.prototypes("disc"))
    assert sides == [32, 64]


def test_the_training_screen_knows_each_strategys_stages():
    """Its bars follow the stages a run trains, in the order its events come."""
    from simsearch import TrainSettings
    from simsearch_tui.train import trained_stages
    assert trained_stages(TrainSettings.cpu()) == ["selflearn", "supcon", "classifier", "probe"]
    assert trained_stages(TrainSettings.cpu("pos")) == ["supcon", "classifier", "probe"]
    assert trained_stages(TrainSettings.cpu("probe")) == ["classifier"]
    assert trained_stages(TrainSettings.paper()) == ["selflearn", "supcon", "classifier"]


def test_g_hides_the_grid_and_its_title_for_a_larger_image(curated_project):
    folder, _ = curated_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (80, 24)) as pilot:
            screen = app.screen
            status = screen.query_one("#status")
            await wait_until(pilot, lambda: "suggestions in" in str(status.render()), what="the suggestions")
            lines = str(status.render()).splitlines()
            assert max(len(line) for line in lines) <= status.content_size.width, lines  # none wraps at 80x24
            height = screen.query_one("#views").region.height
            await pilot.press("g")
            await pilot.pause()
            assert not screen.query_one("#grid").display and not screen.query_one("#gridbar").display
            assert screen.query_one("#views").region.height > height
            await pilot.press("tab")  # tab to the grid shows it again
            await pilot.pause()
            assert screen.query_one("#grid").display and screen.query_one("#gridbar").display
            assert app.state.get("grid_hidden") is False

    run(scenario)


def test_an_empty_grid_gives_its_rows_to_the_image_and_says_why_it_is_empty(fresh_project):
    folder, truth = fresh_project
    y, x = truth["img0.tif"][0][0]

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (80, 24)) as pilot:
            screen = app.screen
            grid, bar = screen.query_one("#grid"), screen.query_one("#gridbar")
            assert not grid.display and bar.display and "none before a class" in str(bar.render())
            empty = screen.query_one("#views").region.height
            await pilot.press("N")
            await pilot.press(*"disc", "enter")
            await wait_until(pilot, lambda: "none before a prototype" in str(bar.render()), what="the class")
            await pilot.press("tab")  # nothing to focus in the grid: the image keeps the keys
            await pilot.pause()
            assert not screen.grid_mode and not grid.display
            for _ in range(3):
                await pilot.press("minus")
            await pilot.press(*keys_to(screen, y, x), "enter")
            await wait_until(pilot, lambda: len(screen.suggestions) > 0, what="suggestions")
            await pilot.pause()
            assert grid.display and screen.query_one("#views").region.height < empty
            await pilot.press(*["right_curly_bracket"] * 20)  # a threshold above every suggestion
            await wait_until(pilot, lambda: not len(screen.suggestions), what="no suggestions")
            await pilot.pause()
            assert not grid.display and "none above the threshold" in str(bar.render())
            assert screen.query_one("#views").region.height == empty

    run(scenario)


def test_a_model_trained_elsewhere_gives_the_train_screen_its_settings(trained_project, tiny_presets):
    """A project trained by a run file or the command line (the fixture's model: strategy pos)
    opens with the Train screen's strategy and preset those that trained it, so the step bar
    says the model is up to date; the default strategy (pos+neg+selflearn) marked it ~."""
    folder, _ = trained_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            await open_step(pilot, app, "4", "train")
            # the step bar shows ✔ until the check (off the UI thread) says otherwise: wait for the adoption first
            await wait_until(pilot, lambda: app.state.get("strategy") == "pos", what="the model's strategy adopted")
            await wait_until(pilot, lambda: "4 Train ✔" in str(app.screen.query_one("#steps").render()) and not app.model_stale,
                             what="an up-to-date model")
            assert app.state["preset"] in ("cpu", "paper")
            assert "strategy pos (s)" in str(app.screen.query_one("#train-settings").render())

    run(scenario)


def test_v_hides_the_boxes_of_suggestions_and_detections_and_keeps_the_choice(trained_project):
    """On a crowded image at a small zoom the boxes cover it: `v` draws the image without the
    suggestions' (Curate) and detections' (Thresholds) boxes, the bar says so, the cursor box
    and the prototypes stay, and a reopening keeps the choice until `v` again."""
    folder, _ = trained_project
    kinds = lambda app, view: [o.style for o in app.screen.query_one(view).overlays]  # noqa: E731

    async def hide():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            screen = app.screen
            await wait_until(pilot, lambda: "thin" in kinds(app, "#image"), what="the suggestions' boxes")
            await pilot.press("v")
            styles = kinds(app, "#image")
            assert "thin" not in styles and "dashed" in styles and "solid" in styles  # the cursor and the prototype stay
            assert screen.boxes_hidden and str(screen.query_one("#imagebar").render()).startswith("boxes hidden (v)")
            await open_step(pilot, app, "6", "thresholds")
            await wait_until(pilot, lambda: len(app.screen.maps) == 4, what="the detection maps")
            assert kinds(app, "#th-image") == [] and str(app.screen.query_one("#th-bar").render()).startswith("boxes hidden")

    async def reopen_and_show():
        app = SimSearchApp(folder)
        async with started(app, (100, 30), "thresholds") as pilot:  # reopened where the user was: still hidden
            await wait_until(pilot, lambda: len(app.screen.maps) == 4, what="the detection maps")
            assert app.screen.boxes_hidden and kinds(app, "#th-image") == []
            await pilot.press("v")
            await wait_until(pilot, lambda: kinds(app, "#th-image"), what="the detections' boxes")
            await open_step(pilot, app, "2", "curate")
            await wait_until(pilot, lambda: "thin" in kinds(app, "#image"), what="the suggestions' boxes again")

    run(hide)
    run(reopen_and_show)


def test_suggestions_that_take_long_are_announced(curated_project, monkeypatch):
    """A new level of a scale pyramid can take minutes to embed on a CPU; meanwhile the side
    panel says the suggestions are being updated (it showed the old counts, and a `c` seemed to
    do nothing), and the line goes when they come."""
    import threading

    folder, _ = curated_project
    slow = threading.Event()
    suggestions = Curation.suggestions

    def slowly(self, *args, **kwargs):
        if slow.is_set():
            time.sleep(1.5)
        return suggestions(self, *args, **kwargs)

    monkeypatch.setattr(Curation, "suggestions", slowly)
    status = lambda app: str(app.screen.query_one("#status").render())  # noqa: E731

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            await wait_until(pilot, lambda: "suggestions in" in status(app), what="the suggestions")
            assert "updating" not in status(app)
            slow.set()
            await pilot.press("right_square_bracket")
            await wait_until(pilot, lambda: status(app).startswith("updating the suggestions ..."), what="the note")
            assert "suggestions in" in status(app)  # the counts of before stay below it
            await wait_until(pilot, lambda: "updating" not in status(app), what="the new suggestions")

    run(scenario)


def test_undo_after_a_reopening_never_removes_another_prototype(fresh_project):
    """The undo history outlives the UI, and the store gives a deleted prototype's id to the
    next one: a prototype added in the UI, deleted and another added outside it (the command
    line) before the UI is reopened, must not be taken for the first by `u`."""
    from simsearch_tui.dialogs import ErrorScreen

    folder, truth = fresh_project
    (y0, x0), (y1, x1) = truth["img0.tif"][0][0], truth["img0.tif"][0][1]

    async def add_one():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            app.curation.add_class("disc")
            app.screen.refresh_view()
            app.screen.cursor = (float(y0), float(x0))
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(app.project.store.prototypes("disc")) == 1, what="the prototype")
            await wait_until(pilot, lambda: app.undo.steps and app.undo.steps[-1].operation == "remove_prototype",
                             what="its undo step")

    run(add_one)
    with Project.open(folder) as project:  # outside the UI: deleted, and another added
        curation = Curation(project)
        first = curation.prototypes("disc")[0]
        curation.remove_prototype(first.id)
        other = curation.add_prototype("disc", "img0.tif", (x1 - 16, y1 - 16, x1 + 16, y1 + 16))
        assert other.id == first.id  # the id the undo step names

    async def undo():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            await pilot.press("u")
            await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), what="the dialog")
            assert "is gone already" in app.screen.message
            assert [p.box for p in app.project.store.prototypes("disc")] == [other.box]

    run(undo)


def test_undo_of_a_review_answer_follows_its_item_into_later_batches(trained_project):
    """A new batch renumbers: `u` takes back the answer of the item answered, found by its
    place, not whichever item now has its number."""
    folder, _ = trained_project

    async def scenario():
        app = SimSearchApp(folder)
        async with started(app, (100, 30)) as pilot:
            screen = await review_batch(pilot, app)
            first = screen.items[0]
            await pilot.press("a")
            await pilot.press("r")
            await wait_until(pilot, lambda: screen.items and not screen.busy and screen.items[0].answer is None
                             and (screen.items[0].image_id, screen.items[0].y) != (first.image_id, first.y), what="the next batch")
            second = screen.items[0]
            await pilot.press("a", "u", "u")
            await pilot.pause()
            answers = {(i.image_id, i.y, i.x): i.answer for i in app.curation.review_items("disc", current_only=False)}
            assert answers[(second.image_id, second.y, second.x)] is None
            assert answers[(first.image_id, first.y, first.x)] is None  # before: still accepted, the undo went to #1 of the new batch

    run(scenario)
