"""Terminal start-up: choosing the graphics (textual-image asks the terminal at import
time), checking that a Kitty terminal can show them, and draining late answers to those
questions before Textual reads the keyboard.

textual-image waits 0.1 s for the terminal's answers; over SSH or through tmux they can
come later, and Textual would then read them as key presses (`?` opened the help, digits
switched screens). So after the import we ask the terminal one more question (device status,
answered with ESC [ 0 n) and discard everything up to its answer: terminals answer in order.

textual-image draws Kitty graphics through Unicode placeholders (the key U=1), which kitty
understands since 0.28. An older kitty (Debian 12 ships 0.26.5) answers textual-image's
question "graphics?" with OK, then rejects every image it is sent and shows the placeholders
as rows of unknown characters: no image at all. `graphics_renderable` asks the question again
with U=1, which such a terminal leaves unanswered, and draws half blocks there instead.
"""
from __future__ import annotations

import importlib
import logging
import os
import random
import select
import sys
import time

log = logging.getLogger(__name__)

STATUS_ANSWER = b"\x1b[0n"  # the answer to a device status request, ESC [ 5 n


def prepare_graphics() -> None:
    """Let textual-image ask the terminal what it supports (it does so when imported, and
    must before Textual starts reading the keyboard), then drop any answer that came late."""
    importlib.import_module("textual_image.widget")
    drain_terminal_answers()


def drain_terminal_answers(timeout: float = 2.0) -> None:
    ask_terminal(b"", timeout)


def ask_terminal(question: bytes, timeout: float = 2.0) -> bytes | None:
    """Send `question` and a device status request, and return everything the terminal sends
    up to the status answer (which is left out): the answer to `question`, or b"" if it gives
    none, as terminals answer in order. None where stdin or stdout is not a terminal;
    whatever came within `timeout` s where the status answer did not."""
    if not (sys.stdin and sys.stdin.isatty() and sys.__stdout__ and sys.__stdout__.isatty()):
        return None
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        sys.__stdout__.write(question.decode() + "\x1b[5n")
        sys.__stdout__.flush()
        received = b""
        deadline = time.monotonic() + timeout
        while not received.endswith(STATUS_ANSWER) and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                received += os.read(fd, 1024)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return received.removesuffix(STATUS_ANSWER)


def unicode_placeholders(timeout: float = 2.0) -> bool:
    """Whether the terminal understands the Kitty graphics key U=1 (Unicode placeholders): it
    answers a graphics query that carries the key. True where it cannot be asked."""
    image_id = random.randint(1, 2**31)
    answer = ask_terminal(f"\x1b_Gi={image_id},s=1,v=1,a=q,t=d,f=24,U=1;AAAA\x1b\\".encode(), timeout)
    return answer is None or f"\x1b_Gi={image_id}".encode() in answer


def graphics_renderable() -> type:
    """The textual-image renderer for this terminal: the one textual-image chose (Sixel, Kitty,
    half blocks, or characters off a terminal), but half blocks where it chose Kitty graphics
    and the terminal cannot show them (`unicode_placeholders`).

    Examples
    --------
    >>> graphics_renderable().__module__   # off a terminal: textual-image's characters
    'textual_image.renderable.unicode'
    """
    from textual_image import renderable

    if renderable.Image is renderable.TGPImage and not unicode_placeholders():
        log.info("the terminal answers Kitty graphics queries but not Unicode placeholders (kitty < 0.28): half blocks")
        return renderable.HalfcellImage
    return renderable.Image
