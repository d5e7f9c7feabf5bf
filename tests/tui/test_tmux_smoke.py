"""The real app in a real terminal (tmux), driven as a new user would on the bundled sample:
the wizard, a class, a prototype, the threshold, a negative, confirmation; then the terminal
is closed mid-session and the app reopened, at 80x24 and resized larger.

Also text snapshots of the dataset screen and the help at fixed sizes
(SIMSEARCH_UPDATE_SNAPSHOTS=1 rewrites them)."""
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from simsearch import Project
from simsearch_tui.render import class_colour

from conftest import REPO as ROOT, Terminal, app_command

SAMPLE = ROOT / "examples" / "data" / "bccd" / "images"
SNAPSHOTS = Path(__file__).parent / "snapshots"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


def settled(terminal: Terminal, timeout: float = 30.0) -> str:
    """The screen once notifications have gone and it stopped changing."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        screen = terminal.screen()
        if screen == previous and "▌" not in screen:
            return screen
        previous = screen
        time.sleep(0.5)
    raise AssertionError(f"the screen never settled:\n{terminal.screen()}")


def snapshot(name: str, screen: str, replacements: dict[str, str]) -> None:
    text = "\n".join(line.rstrip() for line in screen.splitlines()).strip("\n") + "\n"
    for old, new in replacements.items():
        text = text.replace(old, new)
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("SIMSEARCH_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{name}: no snapshot {path}; write it with SIMSEARCH_UPDATE_SNAPSHOTS=1 and read it:\n{text}"
    assert text == path.read_text(), f"{name}: the screen differs from {path}:\n{text}"


def test_new_user_in_tmux_closing_the_terminal_loses_nothing(terminal):
    work = Path(tempfile.mkdtemp(prefix="ss-"))  # short: the path fits on one line of the snapshot
    project = work / "images-simsearch"
    first = terminal(80, 24)
    first.start(["env", f"PYTHONPATH={ROOT}", *app_command(SAMPLE)], cwd=work)
    first.wait_for("new project")
    first.text("96")  # the patch size field has the focus: the dataset is filled in
    first.keys("Enter")
    first.wait_for("Classes", timeout=180)
    first.keys("N")
    first.wait_for("Name of the new class")
    first.text("RBC")
    first.keys("Enter")
    first.wait_for("RBC")
    first.keys("Enter")  # the cursor box, at the image centre, becomes a prototype
    first.wait_for(r"re:[1-9]\d* suggestions? in", timeout=180)
    # the prototype's box is drawn where the user sees it: along its outline, not a stray cell or two
    assert first.cells_coloured(class_colour(0)) >= 12
    first.keys("]", "]")
    first.keys("Tab", "Space")
    first.wait_for("1 flagged as negative")
    first.keys("c")
    first.wait_for("confirmed")
    first.keys("1")
    first.wait_for("mean correlation")
    paths = {str(project): "PROJECT", str(SAMPLE.parent): "SAMPLE"}
    snapshot("dataset-80x24", settled(first), paths)
    first.keys("?")
    first.wait_for("esc closes this help")
    snapshot("dataset-help-80x24", settled(first), paths)
    first.keys("Escape")
    first.close()  # the terminal goes away mid-session: no quit, no save

    with Project.open(project, read_only=True) as saved:
        info = saved.store.class_info("RBC")
        assert info.confirmed and info.similarity_threshold == pytest.approx(0.52)
        assert len(saved.store.prototypes("RBC")) == 1
        assert len(saved.store.patches("RBC", "negative")) == 1

    again = terminal(80, 24)
    again.start(["env", f"PYTHONPATH={ROOT}", *app_command(project)], cwd=work)
    again.wait_for("mean correlation", timeout=120)  # back on the dataset screen
    again.keys("2")
    again.wait_for("1 flagged as negative", timeout=120)
    again.tmux("resize-window", "-t", "app", "-x", "120", "-y", "40")
    screen = again.wait_for("6 Thresholds")  # the full step titles: the app has the new size
    assert len(screen.splitlines()) >= 39
    again.keys("7")
    again.wait_for("no trained model yet")
    snapshot("run-120x40", settled(again), paths)
    again.keys("q")
    time.sleep(1.0)
    assert "Traceback" not in again.screen()
    shutil.rmtree(work, ignore_errors=True)
