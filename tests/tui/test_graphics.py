"""What Sixel and Kitty terminals receive: a view drawn for the renderer, encoded by
textual-image as it would be sent, then decoded back to pixels, still shows every box line
where it was drawn (nothing was resampled away). The half-block path is checked in a real
terminal by the tmux smoke test."""
import base64
import io
import re

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

pytest.importorskip("textual_image")
from textual_image._terminal import CellSize  # noqa: E402
from textual_image.renderable import sixel, tgp  # noqa: E402

import simsearch_tui.widgets as widgets  # noqa: E402
from simsearch_tui.render import CURSOR, PALETTE, Overlay, Viewport, render_view  # noqa: E402

CELL = CellSize(10, 20)  # a terminal cell of 10 x 20 px
COLUMNS, ROWS = 40, 12


def decode_sixel(text: str) -> np.ndarray:
    """(H, W, 3) uint8 of the first sixel image in `text` (DCS ... q ... ST)."""
    body = re.search(r"\x1bP[^q]*q(.*?)\x1b\\", text, re.S).group(1)
    colours: dict[int, tuple[int, int, int]] = {}
    pixels: dict[tuple[int, int], tuple[int, int, int]] = {}
    x = band = colour = 0
    for match in re.finditer(r'"[\d;]*|#(\d+)(?:;(\d+);(\d+);(\d+);(\d+))?|!(\d+)([?-~])|([?-~])|(\$)|(-)', body):
        number, kind, r, g, b, repeat, repeated, single, home, newline = match.groups()
        if number is not None:
            colour = int(number)
            if kind is not None:  # RGB in percent
                colours[colour] = tuple(round(int(v) * 255 / 100) for v in (r, g, b))
        elif repeated or single:
            bits, count = ord(repeated or single) - 63, int(repeat or 1)
            for dx in range(count):
                for bit in range(6):
                    if bits >> bit & 1:
                        pixels[(band * 6 + bit, x + dx)] = colours[colour]
            x += count
        elif home:
            x = 0
        elif newline:
            x, band = 0, band + 1
    height, width = max(y for y, _ in pixels) + 1, max(x for _, x in pixels) + 1
    out = np.zeros((height, width, 3), np.uint8)
    for (y, x), rgb in pixels.items():
        out[y, x] = rgb
    return out


def scene():
    """A grey image with a class box and the dashed cursor box, drawn for the Sixel/Kitty cell."""
    rgb = np.full((480, 640, 3), 128, np.uint8)
    size = widgets.view_pixels(COLUMNS, ROWS, sixel.Image)
    assert size == (COLUMNS * CELL.width, ROWS * CELL.height)
    viewport = Viewport(480, 640)
    region = viewport.region(size[0] / size[1])
    boxes = [Overlay((100, 100, 220, 220), PALETTE[1], "thin"), Overlay((400, 250, 500, 350), CURSOR, "dashed")]
    view = render_view(rgb, 1.0, region, size, boxes)
    scale = size[0] / (region[2] - region[0])
    return view, boxes, region, scale


def assert_outlines(decoded: np.ndarray, boxes, region, scale, tolerance: int = 12):
    """Along each box's sides (where render_view draws them), the box colour is there."""
    for box in boxes:
        x0, y0, x1, y1 = ((v - o) * scale for v, o in zip(box.box, (region[0], region[1], region[0], region[1])))
        left, top, right, bottom = int(round(x0)), int(round(y0)), int(round(x1 - 1)), int(round(y1 - 1))
        for side in (decoded[top, left:right], decoded[bottom, left:right], decoded[top:bottom, left], decoded[top:bottom, right]):
            near = (np.abs(side.astype(int) - box.colour) <= tolerance).all(axis=-1)
            assert near.mean() >= (0.4 if box.style == "dashed" else 0.95), (box, near.mean())


def test_sixel_bytes_decode_to_the_drawn_boxes(monkeypatch):
    monkeypatch.setattr(sixel, "get_cell_size", lambda: CELL)
    monkeypatch.setattr(widgets, "get_cell_size", lambda: CELL)
    view, boxes, region, scale = scene()
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=COLUMNS, height=ROWS).print(sixel.Image(view, COLUMNS, ROWS))
    decoded = decode_sixel(out.getvalue())
    assert decoded.shape[:2] == (view.height, view.width)  # sent at the drawn size: nothing resampled
    assert_outlines(decoded, boxes, region, scale)


def test_kitty_bytes_decode_to_the_drawn_boxes(monkeypatch):
    monkeypatch.setattr(tgp, "get_cell_size", lambda: CELL)
    monkeypatch.setattr(widgets, "get_cell_size", lambda: CELL)
    sent = []
    monkeypatch.setattr(tgp, "_send_tgp_message", lambda payload=None, **keys: sent.append((keys, payload)))
    view, boxes, region, scale = scene()
    Console(file=io.StringIO(), force_terminal=True, width=COLUMNS, height=ROWS).print(tgp.Image(view, COLUMNS, ROWS))
    png = base64.b64decode("".join(payload for keys, payload in sent if keys.get("f") == 100))
    decoded = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert decoded.shape[:2] == (view.height, view.width)
    assert_outlines(decoded, boxes, region, scale, tolerance=0)
    placement = [keys for keys, _ in sent if keys.get("a") == "p"]
    assert placement and (placement[0]["c"], placement[0]["r"]) == (COLUMNS, ROWS)  # on the view's cells


class ScriptedTerminal:
    """A pseudo-terminal whose far side answers the questions textual-image and the TUI ask
    at start-up as a Kitty terminal would: primary device attributes without Sixel, cell size,
    device status, and the graphics query; `placeholders` False answers as kitty before 0.28
    does, which leaves a graphics query carrying U=1 unanswered (checked in kitty 0.26.5)."""

    def __init__(self, placeholders: bool):
        self.placeholders = placeholders
        self.asked: list[bytes] = []

    def answer(self, question: bytes) -> bytes:
        self.asked.append(question)
        if question == b"\x1b[c":
            return b"\x1b[?62;22c"
        if question == b"\x1b[16t":
            return b"\x1b[6;20;10t"
        if question == b"\x1b[5n":
            return b"\x1b[0n"
        keys = dict(item.split(b"=", 1) for item in question[3:].split(b";")[0].split(b","))
        if keys.get(b"U") == b"1" and not self.placeholders:
            return b""
        return b"\x1b_Gi=" + keys[b"i"] + b";OK\x1b\\"

    def run(self, code: str) -> str:
        """Run `code` in a Python whose terminal is this one; its output, questions left out."""
        import os
        import pty
        import select
        import subprocess
        import sys

        master, slave = pty.openpty()
        child = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave,
                                 env={**os.environ, "TERM": "xterm-kitty"}, close_fds=True)
        os.close(slave)
        questions = re.compile(rb"\x1b\[c|\x1b\[16t|\x1b\[5n|\x1b_G[^\x1b]*\x1b\\")
        output = b""
        try:
            while True:
                ready, _, _ = select.select([master], [], [], 60)
                assert ready, "the child hangs"
                try:
                    data = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                output += data
                for question in questions.findall(data):
                    os.write(master, self.answer(question))
        finally:
            child.wait(timeout=60)
            os.close(master)
        return questions.sub(b"", output).decode(errors="replace")


@pytest.mark.parametrize("placeholders", [True, False])
def test_kitty_graphics_only_where_the_terminal_shows_unicode_placeholders(placeholders):
    """kitty before 0.28 says yes to textual-image's graphics query but cannot show the images
    it is then sent (they are Unicode placeholders, U=1): there the TUI draws half blocks."""
    terminal = ScriptedTerminal(placeholders)
    shown = terminal.run("from simsearch_tui.terminal import graphics_renderable\n"
                         "print('renderer', graphics_renderable().__module__)")
    assert any(q.startswith(b"\x1b_G") and b"U=1" in q for q in terminal.asked), terminal.asked
    expected = "textual_image.renderable.tgp" if placeholders else "textual_image.renderable.halfcell"
    assert f"renderer {expected}" in shown, shown
