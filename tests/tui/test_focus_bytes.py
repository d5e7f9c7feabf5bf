"""A step screen in a real terminal (tmux): moving the focus repaints the widgets whose focus
style changed, not the whole screen (over SSH a `tab` sent the whole screen again)."""
import shutil
import sys
import time

import pytest

from conftest import REPO as ROOT
from test_halfblocks import wait

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")

APP = """
import numpy as np
from PIL import Image
from textual.app import App
from textual.widgets import Static
from simsearch_tui.base import StepScreen
from simsearch_tui.widgets import HalfBlocks

NOISE = np.random.default_rng(0).integers(60, 121, (20, 40, 3), dtype=np.uint8)  # no two cells alike


class Step(StepScreen):
    NAME = "curate"
    CSS = '''
    HalfBlocks { width: 40; height: 10; }
    .box { width: 12; height: 3; border: tall $background; }
    .box:focus { border: tall rgb(230,40,40); }
    '''

    def body(self):
        yield HalfBlocks(Image.fromarray(NOISE))
        yield Static("one", classes="box")
        yield Static("two", classes="box")

    def on_mount(self):
        for box in self.query(".box"):
            box.can_focus = True
        self.query(".box").first().focus()


class Demo(App):
    def remember_place(self, **place): pass
    def check_model(self): pass
    def step_marks(self): return {}
    def on_mount(self): self.push_screen(Step())


Demo().run()
"""


def red_rows(term) -> list[int]:
    """The screen rows showing the focus border's red (the step bar is row 0, the image rows 1-10)."""
    lines = term.tmux("capture-pane", "-p", "-e", "-t", "app").splitlines()
    return [row for row, line in enumerate(lines) if "2;230;40;40" in line]


def test_a_focus_move_does_not_repaint_the_screen(terminal, tmp_path):
    script, sent = tmp_path / "demo.py", tmp_path / "sent.bin"
    script.write_text(APP)
    term = terminal(60, 24)
    term.start(["env", f"PYTHONPATH={ROOT}", sys.executable, str(script)], cwd=tmp_path)
    wait(lambda: term.tmux("capture-pane", "-p", "-e", "-t", "app").count("▀") >= 400, "the image")
    wait(lambda: red_rows(term) == [11, 12, 13], "the focus border on the first box (rows 11-13)")
    time.sleep(1.0)
    term.tmux("pipe-pane", "-O", "-t", "app", f"cat > {sent}")  # from here on, what the app writes
    term.keys("Tab")
    wait(lambda: red_rows(term) == [14, 15, 16], "the focus border on the second box (rows 14-16)")
    time.sleep(1.0)
    term.tmux("pipe-pane", "-t", "app")
    # the two boxes' borders and the footer: under 1 kB; the whole screen again is 19 kB (the image's 400 cells)
    assert 0 < sent.stat().st_size < 3000, sent.stat().st_size
    screen = term.tmux("capture-pane", "-p", "-e", "-t", "app")
    assert screen.count("▀") >= 400
