"""Wall-clock timing of training, for the run's history and for the benchmarks alike."""

import resource
import time
from typing import Optional

import keras


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class EpochTimer(keras.callbacks.Callback):
    """Times each epoch of `fit`: the end of every training batch, and the training part.

    With `num_images`, it adds to each epoch's logs (so to history.csv) the training
    images/s (validation excluded), the epoch's seconds and the process's peak memory so
    far (MiB); list it before callbacks that write the logs. `batch_ends` serves the
    benchmarks' windowed rates.
    """

    def __init__(self, num_images: Optional[int] = None):
        super().__init__()
        self._num_images = num_images
        self._start = self._train_seconds = 0.0
        self.batch_ends: list[list[float]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train_seconds = 0.0
        self.batch_ends.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.batch_ends[-1].append(time.perf_counter())

    def on_test_begin(self, logs=None):
        if not self._train_seconds:
            self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        if self._num_images is None or logs is None:
            return
        elapsed = time.perf_counter() - self._start
        logs["train_images_per_sec"] = self._num_images / (self._train_seconds or elapsed)
        logs["epoch_seconds"] = elapsed
        logs["peak_rss_mb"] = peak_rss_mb()
