"""Pilot tests of the terminal UI's curation screen (a real Textual app, a real project)."""
import asyncio

import pytest

from conftest import planted_project
from simsearch import Curation, Project

pytest.importorskip("textual")
from tui.app import SimSearchApp  # noqa: E402


@pytest.fixture
def project_folder(tmp_path):
    project, truth = planted_project(tmp_path, 4, displayed=("img0.tif", "img1.tif"))
    with project:
        curation = Curation(project)
        curation.add_class("disc", similarity_threshold=0.6)
        y, x = truth["img0.tif"][0][0]
        curation.add_prototype("disc", "img0.tif", (x - 16, y - 16, x + 16, y + 16))
    return tmp_path / "proj"


async def _wait_for_rows(app, pilot):
    for _ in range(200):
        await pilot.pause()
        if app.shown:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("suggestions never appeared")


def test_threshold_flag_and_confirm_keys(project_folder):
    async def scenario():
        app = SimSearchApp(project_folder)
        async with app.run_test(size=(100, 30)) as pilot:
            await _wait_for_rows(app, pilot)
            await pilot.press("right_square_bracket")
            await pilot.press("left_curly_bracket")
            assert app.project.store.class_info("disc").similarity_threshold == pytest.approx(0.56)
            await pilot.press("tab")
            await pilot.press("space")
            assert len(app.project.store.patches("disc", "negative")) == 1
            assert app.shown[0].flagged
            await pilot.press("c")
            assert app.project.store.class_info("disc").confirmed
            await pilot.press("question_mark")
            await pilot.press("q")

    asyncio.run(scenario())
    with Project.open(project_folder, read_only=True) as again:  # everything was saved as it happened
        assert again.store.class_info("disc").similarity_threshold == pytest.approx(0.56)
        assert len(again.store.patches("disc", "negative")) == 1
