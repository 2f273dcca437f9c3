"""A long read says what it is doing and how far it is: silent for a read that ends
within `EVERY_SECONDS` (a small folder's output stays IDG's), then one line every
`EVERY_SECONDS` and one when it ends. The same for a call on every file (a stat, a
header), which on a bucket of a million files takes minutes."""

import time
from typing import Callable, Sequence, TypeVar

from rps_tfdata.infra import fs

_T = TypeVar("_T")

# Seconds between two lines (and before the first).
EVERY_SECONDS = 5.0


class Progress:
    """Counts what a read or a call on every file has done (`unit`s: images, files) and,
    past `EVERY_SECONDS`, hands `say` a line now and then.

    Args:
      what: what is done and where to, e.g. "Reading 32,000 images into memory".
      total: how many `unit`s there are.
      say: where the lines go (`print` for the drop-in, the log for the trainer).
      unit: what is counted, in the lines.
    """

    def __init__(self, what: str, total: int, say: Callable[[str], None], unit: str = "images"):
        self._what, self._total, self._say, self._unit = what, total, say, unit
        self._start = self._last = time.monotonic()
        self._said = False

    def update(self, done: int) -> None:
        """`done` of the `unit`s have been tried: a line if `EVERY_SECONDS` passed since
        the last (the counts come as a read's batches end, or every
        `fs.PROGRESS_EVERY` calls, so a job a little longer than `EVERY_SECONDS` may
        say nothing)."""
        now = time.monotonic()
        if now - self._last < EVERY_SECONDS or done >= self._total:
            return
        self._last, self._said = now, True
        rate = done / max(now - self._start, 1e-9)
        left = (self._total - done) / rate if rate else float("inf")
        share = f"{done:,} of {self._total:,} ({done / self._total:.0%})"
        self._say(f"{self._what}: {share}, {rate:,.0f} {self._unit}/s, about {left:,.0f} s to go")

    def finish(self, done: int) -> None:
        """The job ended with `done` `unit`s done (a read's images that its decoder
        rejected are named apart): a last line if any line was said."""
        if self._said:
            seconds = time.monotonic() - self._start
            self._say(f"{self._what}: done, {done:,} {self._unit} in {seconds:,.1f} s")


def for_each_file(
    what: str, call: Callable[[str], _T], paths: Sequence[str], say: Callable[[str], None]
) -> list[_T]:
    """`fs.for_each(call, paths)`, saying how far it is as a read does ("`what`: 256 of
    1,000 (26%), 90 files/s, about 8 s to go")."""
    counting = Progress(what, len(paths), say, unit="files")
    results = fs.for_each(call, paths, counting.update)
    counting.finish(len(results))
    return results
