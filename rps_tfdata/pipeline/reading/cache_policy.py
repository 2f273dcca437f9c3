"""Which cache holds a split's pixels: memory when they fit beside the model that trains
on them, else disk.

Past a cgroup's memory limit the kernel kills the process without a word, and a memory
cache is sized by the data, not by any setting. So a cache asked for as "auto" is chosen
once the images are counted: memory only when its peak leaves half of the room this
process may still use (`resources.memory_room`), and at least `ROOM_FOR_TRAINING_MB`, to
training; else disk. Each face names its own setting when it refuses a memory cache
that was asked for and does not fit (`MemoryCacheTooLargeError`).
"""

from typing import NamedTuple, Sequence

import numpy as np

from rps_tfdata.infra.resources import MemoryRoom

# The memory a run of the seed's CNN takes beyond TensorFlow's import, at 150-192 px in
# batches of 8-32, cache aside (measured in its cgroup: BUILD.md, "A memory limit").
ROOM_FOR_TRAINING_MB = 1024


class MemoryCacheTooLargeError(ValueError):
    """A memory cache was asked for and does not fit; the message says how much it takes
    and how much there is."""


class CacheChoice(NamedTuple):
    """The cache chosen, and what the memory cache would take beside the room (words
    for a log line)."""

    cache: str
    need: str


def memory_cache_peak(counts: Sequence[int], pixel_shape: Sequence[int]) -> int:
    """The bytes the memory cache of splits of `counts` images of `pixel_shape` takes at
    its peak, as they are built one after another: what they hold, plus the copy of the
    largest's batches that `tf.concat` copies into it."""
    per_image = int(np.prod(pixel_shape))
    return per_image * (sum(counts) + max(counts, default=0))


def choose(
    requested: str, counts: Sequence[int], pixel_shape: Sequence[int], room: MemoryRoom
) -> CacheChoice:
    """The cache for splits of `counts` images of `pixel_shape`.

    Args:
      requested: "auto" (memory when it fits, else disk), or a cache mode, kept as asked
        when it fits.
      counts: the images of each split the cache would hold.
      pixel_shape: one decoded image's shape.
      room: the memory this process may still use.

    Raises:
      MemoryCacheTooLargeError: "memory" was asked for and does not fit.
    """
    if requested not in ("auto", "memory"):
        return CacheChoice(requested, "")
    peak = memory_cache_peak(counts, pixel_shape) / 2**20
    height, width = pixel_shape[:2]
    need = (
        f"the memory cache of {sum(counts)} images at {height}x{width} takes up to "
        f"{peak:.0f} MB, and this process may use {room.mb:.0f} MB more ({room.bound})"
    )
    if peak <= room.mb - max(room.mb / 2, ROOM_FOR_TRAINING_MB):
        return CacheChoice("memory", need)
    if requested == "memory":
        raise MemoryCacheTooLargeError(need)
    return CacheChoice("disk", need)
