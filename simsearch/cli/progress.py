"""A small text progress bar for the CLI (the engine itself only yields events)."""
from __future__ import annotations

import sys
import time


class ProgressBar:
    """Redraws one line on a terminal; prints at most every 10 % otherwise; silent when quiet."""

    def __init__(self, total: int, label: str, *, quiet: bool = False, stream=None):
        self.total = max(total, 1)
        self.label = label
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self._last_decile = -1
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, done: int, note: str = "") -> None:
        if self.quiet:
            return
        fraction = min(done / self.total, 1.0)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        text = f"{self.label} {done}/{self.total} [{'#' * int(fraction * 30):<30}] {elapsed:5.1f}s eta {eta:5.1f}s {note}"
        if self._tty:
            self.stream.write("\r" + text[:120].ljust(120))
            if done >= self.total:
                self.stream.write("\n")
        elif int(fraction * 10) > self._last_decile:
            self._last_decile = int(fraction * 10)
            self.stream.write(text + "\n")
        self.stream.flush()
