"""Terminal start-up: choosing the graphics (textual-image asks the terminal at import
time) and draining late answers to those questions before Textual reads the keyboard.

textual-image waits 0.1 s for the terminal's answers; over SSH or through tmux they can
come later, and Textual would then read them as key presses (`?` opened the help, digits
switched screens). So after the import we ask the terminal one more question (device status,
answered with ESC [ 0 n) and discard everything up to its answer: terminals answer in order.
"""
from __future__ import annotations

import importlib
import os
import select
import sys
import time


def prepare_graphics() -> None:
    """Let textual-image ask the terminal what it supports (it does so when imported, and
    must before Textual starts reading the keyboard), then drop any answer that came late."""
    importlib.import_module("textual_image.widget")
    drain_terminal_answers()


def drain_terminal_answers(timeout: float = 2.0) -> None:
    if not (sys.stdin and sys.stdin.isatty() and sys.__stdout__ and sys.__stdout__.isatty()):
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        sys.__stdout__.write("\x1b[5n")
        sys.__stdout__.flush()
        received = b""
        deadline = time.monotonic() + timeout
        while not received.endswith(b"\x1b[0n") and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                received += os.read(fd, 1024)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
