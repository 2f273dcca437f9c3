"""Throughput measurements: images/s of the input pipeline, the train step, and both.

Each function excludes warm-up (tracing, XLA compilation, the first pass that fills
caches where it says so), repeats its measurement, and returns the samples' median and
spread. Timing is wall clock, on a machine that may be shared: compare figures from the
same run (ours against the seed's), not across runs.
"""

import os
import platform
import statistics
import time
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

import keras
import tensorflow as tf


class Rate(NamedTuple):
    """Images per second: median and range of the repeated samples."""

    median: float
    low: float
    high: float
    samples: tuple[float, ...]

    def __str__(self) -> str:
        spread = f"range {self.low:.1f}-{self.high:.1f}, n={len(self.samples)}"
        return f"{self.median:9.1f} images/s  ({spread})"


def rate_of(samples: Iterable[float]) -> Rate:
    values = tuple(samples)
    return Rate(statistics.median(values), min(values), max(values), values)


def time_batches(
    next_batch: Callable[[], object], batch_size: int, *, batches: int, repeats: int
) -> Rate:
    """Times `batches` calls of `next_batch` per repeat (one untimed call first)."""
    next_batch()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            next_batch()
        samples.append(batches * batch_size / (time.perf_counter() - start))
    return rate_of(samples)


def window_rates(
    batch_ends: list[list[float]], batch_size: int, window: int, *, skip_epochs: int
) -> Rate:
    """Images/s over windows of `window` full batches, after `skip_epochs` epochs.

    `batch_ends` holds each epoch's batch end times. Within an epoch the clock starts at
    the end of its first batch and the partial last batch is left out, so every window
    holds only full batches.
    """
    samples = []
    for ends in batch_ends[skip_epochs:]:
        usable = ends[: len(ends) - 1]
        for start in range(0, len(usable) - window, window):
            seconds = usable[start + window] - usable[start]
            samples.append(window * batch_size / seconds)
    if not samples:
        raise ValueError(f"too few batches per epoch for windows of {window}; lower --window")
    return rate_of(samples)


def time_training(
    train_step: Callable[..., Any],
    batches: Iterator,
    *,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    window: int,
) -> Rate:
    """Images/s of the train step fed by `batches`, after a first epoch of warm-up.

    Each batch's loss is read back before the clock is taken, so a step is timed when it
    has finished, not when it was queued.
    """
    batch_ends: list[list[float]] = []
    for _ in range(epochs):
        batch_ends.append([])
        for _ in range(steps_per_epoch):
            loss_sum, *_ = train_step(next(batches))
            float(loss_sum)
            batch_ends[-1].append(time.perf_counter())
    return window_rates(batch_ends, batch_size, window, skip_epochs=1)


def loopback_bytes() -> Optional[int]:
    """Bytes received on this machine's loopback interface so far (Linux's
    /proc/net/dev), or None elsewhere: what a local tf.data service's workers sent the
    trainer, gRPC framing included, plus whatever else talked over 127.0.0.1 meanwhile."""
    try:
        with open("/proc/net/dev") as f:
            rows = [line.split(":", 1) for line in f if ":" in line]
    except OSError:
        return None
    counters = {name.strip(): values.split() for name, values in rows}
    return int(counters["lo"][0]) if "lo" in counters else None


def environment() -> dict[str, str]:
    """Versions and devices, for the header of every report."""
    devices = [d.name.replace("/physical_device:", "") for d in tf.config.list_physical_devices()]
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "python": platform.python_version(),
        "devices": ", ".join(devices),
        "cpu": names[0] if names else platform.processor(),
        "cpu_count": str(os.cpu_count()),
    }
