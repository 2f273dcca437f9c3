"""Throughput measurements: images/s of the input pipeline, the train step, and `fit`.

Each function excludes warm-up (tracing, XLA compilation, the first pass that fills
caches where it says so), repeats its measurement, and returns the samples' median and
spread. Timing is wall clock, on a machine that may be shared: compare figures from the
same run (ours against the seed's), not across runs.
"""

import os
import platform
import statistics
import time
from typing import Callable, Iterable, Iterator, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from rps_tfdata.core.timing import EpochTimer


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


def _count_images(batches: Iterator) -> int:
    count = 0
    for batch in batches:
        images = batch[0] if isinstance(batch, tuple) else batch
        count += int(images.shape[0])
    return count


def time_epochs(make_dataset: Callable[[], Iterable], *, epochs: int, repeats: int):
    """Times full passes over fresh datasets: (first-pass Rate, later-passes Rate).

    Each repeat builds a new dataset (so a `cache()` starts empty) and iterates it
    `epochs` times: the first pass is the cold one (decode-bound), the later ones the
    steady state. Before the repeats one untimed batch traces and compiles everything.
    """
    next(iter(make_dataset()))
    cold, steady = [], []
    for _ in range(repeats):
        dataset = make_dataset()
        for epoch in range(epochs):
            start = time.perf_counter()
            count = _count_images(iter(dataset))
            (cold if epoch == 0 else steady).append(count / (time.perf_counter() - start))
    return rate_of(cold), rate_of(steady) if steady else None


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

    `batch_ends` holds each epoch's batch end times (`timing.EpochTimer.batch_ends`).
    Within an epoch the clock starts at the end of its first batch and the partial last
    batch is left out, so every window holds only full batches.
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


def time_fit(
    model: keras.Model, data, *, epochs: int, batch_size: int, window: int, **fit_kwargs
) -> Rate:
    """Images/s of `model.fit(data)` after its first epoch (warm-up: tracing, cache fill)."""
    timer = EpochTimer()
    model.fit(data, epochs=epochs, callbacks=[timer], verbose=0, **fit_kwargs)
    return window_rates(timer.batch_ends, batch_size, window, skip_epochs=1)


def time_train_step(
    model: keras.Model,
    image_size: tuple[int, int],
    num_classes: int,
    *,
    batch_size: int,
    steps: int,
    repeats: int,
) -> Rate:
    """The model's ceiling: `fit` on one in-memory synthetic batch, repeated (no input cost)."""
    rng = np.random.default_rng(0)
    images = rng.random((batch_size, *image_size, 3), dtype=np.float32)
    labels = np.eye(num_classes, dtype=np.float32)[rng.integers(num_classes, size=batch_size)]
    data = tf.data.Dataset.from_tensors((images, labels)).repeat().take((repeats + 1) * steps)
    timer = EpochTimer()
    model.fit(
        data, epochs=repeats + 1, steps_per_epoch=steps, callbacks=[timer], verbose=0, shuffle=False
    )
    return window_rates(timer.batch_ends, batch_size, steps - 2, skip_epochs=1)


def environment() -> dict[str, str]:
    """Versions and devices, for the header of every report."""
    devices = [d.name.replace("/physical_device:", "") for d in tf.config.list_physical_devices()]
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "devices": ", ".join(devices),
        "cpu": names[0] if names else platform.processor(),
        "cpu_count": str(os.cpu_count()),
    }
