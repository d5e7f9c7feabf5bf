"""Half blocks in a real terminal (tmux): a new image repaints only the cells whose pixels
changed (what crosses a slow link), and the terminal then shows the new image exactly."""
import shutil
import sys
import time

import pytest

from conftest import REPO as ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")

APP = """
import numpy as np
from PIL import Image
from textual.app import App
from simsearch_tui.widgets import HalfBlocks

NOISE = np.random.default_rng(0).integers(60, 121, (20, 40, 3), dtype=np.uint8)  # no two cells alike
BOXED = NOISE.copy()
BOXED[4:8, 10:14] = (230, 40, 40)  # 4 x 4 px: rows 2-3 of cells, columns 10-13


class Demo(App):
    CSS = "HalfBlocks { width: 40; height: 10; }"

    def compose(self):
        yield HalfBlocks(Image.fromarray(NOISE))

    def on_key(self, event):
        if event.key == "x":
            self.query_one(HalfBlocks).image = Image.fromarray(BOXED)


Demo().run()
"""


def wait(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_changed_image_repaints_only_the_cells_that_changed(terminal, tmp_path):
    script, sent = tmp_path / "demo.py", tmp_path / "sent.bin"
    script.write_text(APP)
    term = terminal(60, 14)
    term.start(["env", f"PYTHONPATH={ROOT}", sys.executable, str(script)], cwd=tmp_path)
    red = (230, 40, 40)
    wait(lambda: term.tmux("capture-pane", "-p", "-e", "-t", "app").count("▀") >= 400, "the image")
    term.tmux("pipe-pane", "-O", "-t", "app", f"cat > {sent}")  # from here on, what the app writes
    term.keys("x")
    wait(lambda: term.cells_coloured(red) == 8, "the red square")
    time.sleep(1.0)
    term.tmux("pipe-pane", "-t", "app")
    # the 8 cells and a cursor move per row; the whole image again would be 400 cells of ~40 bytes
    assert 0 < sent.stat().st_size < 1500, sent.stat().st_size
    screen = term.tmux("capture-pane", "-p", "-e", "-t", "app")
    assert screen.count("▀") >= 400 and term.cells_coloured(red) == 8
