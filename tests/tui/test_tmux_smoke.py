"""The real app in a real terminal (tmux), driven as a new user would on the bundled sample:
the wizard, a class, a prototype, the threshold, a negative, confirmation; then the terminal
is closed mid-session and the app reopened, at 80x24 and resized larger.

Also text snapshots of the dataset screen and the help at fixed sizes
(SIMSEARCH_UPDATE_SNAPSHOTS=1 rewrites them)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from simsearch import Project
from tui.render import class_colour

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "data" / "bccd" / "images"
SNAPSHOTS = Path(__file__).parent / "snapshots"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


class Terminal:
    """A tmux session on its own server socket."""

    def __init__(self, width: int, height: int):
        self.socket = f"simsearch-test-{uuid.uuid4().hex[:8]}"
        self.size = (width, height)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def start(self, command: list[str], cwd: Path) -> None:
        env = " ".join(f"{k}={v}" for k, v in (("SIMSEARCH_OFFLINE", "1"), ("TORCH_HOME", os.environ["TORCH_HOME"]),
                                               ("TERM", "xterm-256color"), ("COLORTERM", "truecolor")))
        # pytest exports COLUMNS and LINES, and Textual would keep that size through every resize
        line = f"cd {cwd} && env -u COLUMNS -u LINES {env} {' '.join(command)}; sleep 600"
        self.tmux("new-session", "-d", "-s", "app", "-x", str(self.size[0]), "-y", str(self.size[1]), line)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "app", key)
            time.sleep(0.15)

    def text(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "app", "-l", "".join(keys))
        time.sleep(0.15)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "app")

    def cells_coloured(self, colour: tuple[int, int, int]) -> int:
        """Cells drawn in `colour` (as their text or background colour): what the user sees."""
        wanted = "2;{};{};{}".format(*colour)
        count = 0
        for line in self.tmux("capture-pane", "-p", "-e", "-t", "app").splitlines():
            fg = bg = ""
            for sgr, char in re.findall(r"\x1b\[([0-9;]*)m|(.)", line):
                if char:
                    count += wanted in (fg, bg)
                elif sgr in ("", "0"):
                    fg = bg = ""
                else:
                    for kind, value in re.findall(r"(38|48);(2;\d+;\d+;\d+|5;\d+)", sgr):
                        fg, bg = (value, bg) if kind == "38" else (fg, value)
        return count

    def wait_for(self, text: str, timeout: float = 90.0) -> str:
        """Until `text` is on the screen (a regular expression when it starts with 're:')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(text[3:], screen) if text.startswith("re:") else text in screen:
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal():
    opened = []

    def make(width=80, height=24):
        opened.append(Terminal(width, height))
        return opened[-1]

    yield make
    for terminal in opened:
        terminal.close()


def app_command(target: Path) -> list[str]:
    return [sys.executable, "-m", "tui", str(target)]


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
    first.wait_for(r"re:[1-9]\d* suggestions in", timeout=180)
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
