"""A long read says what it is doing and how far it is: silent for a read that ends
within `EVERY_SECONDS` (a small folder's output stays IDG's), then one line every
`EVERY_SECONDS` and one when it ends."""

import time
from typing import Callable

# Seconds between two lines (and before the first).
EVERY_SECONDS = 5.0


class Progress:
    """Counts a read's images and, past `EVERY_SECONDS`, hands `say` a line now and then.

    Args:
      what: what is read and where to, e.g. "Reading 32,000 images into memory".
      total: how many images the read holds.
      say: where the lines go (`print` for the drop-in, the log for the trainer).
    """

    def __init__(self, what: str, total: int, say: Callable[[str], None]):
        self._what, self._total, self._say = what, total, say
        self._start = self._last = time.monotonic()
        self._said = False

    def update(self, done: int) -> None:
        """`done` of the images have been tried: a line if `EVERY_SECONDS` passed since
        the last (the lines come as batches of the read end, so a read a little longer
        than `EVERY_SECONDS` may say nothing)."""
        now = time.monotonic()
        if now - self._last < EVERY_SECONDS or done >= self._total:
            return
        self._last, self._said = now, True
        rate = done / max(now - self._start, 1e-9)
        left = (self._total - done) / rate if rate else float("inf")
        share = f"{done:,} of {self._total:,} ({done / self._total:.0%})"
        self._say(f"{self._what}: {share}, {rate:,.0f} images/s, about {left:,.0f} s to go")

    def finish(self, done: int) -> None:
        """The read ended with `done` images read (those its decoder rejected are named
        apart): a last line if any line was said."""
        if self._said:
            seconds = time.monotonic() - self._start
            self._say(f"{self._what}: done, {done:,} images in {seconds:,.1f} s")
