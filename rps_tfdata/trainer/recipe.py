"""The training recipe beyond the seed's: a learning-rate schedule, label smoothing,
class weights and early stopping. Each is off by default (the seed's run, bit for bit),
and each is a function of what a checkpoint holds (the optimizer's step count, the
history), so a resumed run, even one resumed inside an epoch, goes on exactly as the
run that never stopped.
"""

import math
from typing import Any, NamedTuple, Optional, Sequence, Union

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="rps_tfdata")
class LearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The rate of the `s`-th update (s = the optimizer's step count + 1): linear from 0
    to `peak` over `warmup_steps` (peak * s / warmup), then `peak`, or with `cosine`
    half a cosine from `peak` down to 0 at `total_steps`."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, cosine: bool):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.cosine = cosine

    def __call__(self, step):
        s = tf.cast(step, tf.float32) + 1.0
        peak = tf.constant(self.peak, tf.float32)
        rate = peak
        if self.cosine:
            span = float(max(self.total_steps - self.warmup_steps, 1))
            done = tf.clip_by_value((s - self.warmup_steps) / span, 0.0, 1.0)
            rate = peak * 0.5 * (1.0 + tf.cos(math.pi * done))
        if self.warmup_steps:
            rate = tf.where(s <= self.warmup_steps, peak * s / self.warmup_steps, rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "cosine": self.cosine,
        }


def learning_rate(
    peak: float, schedule: str, warmup_epochs: int, epochs: int, steps_per_epoch: int
) -> Union[float, LearningRate]:
    """What the optimizer takes: the constant `peak` itself (the seed's run, unchanged),
    or the schedule over the run's global steps."""
    if schedule == "constant" and not warmup_epochs:
        return peak
    return LearningRate(
        peak, warmup_epochs * steps_per_epoch, epochs * steps_per_epoch, schedule == "cosine"
    )


def rate_after(rate: Union[float, LearningRate], steps: int) -> float:
    """The rate of the last of `steps` updates (history.csv's per-epoch rate)."""
    if isinstance(rate, float):
        return rate
    return float(rate(max(steps - 1, 0)).numpy())


def class_weights(mode: str, counts: Sequence[int]) -> Optional[list[float]]:
    """Per-class weights of the training loss: None for "none"; "balanced" gives each
    class n / (classes * its count), so every class weighs as much in all (a class of no
    image weighs 0)."""
    if mode == "none":
        return None
    total, classes = sum(counts), len(counts)
    return [total / (classes * count) if count else 0.0 for count in counts]


def training_targets(labels: tf.Tensor, smoothing: float) -> tf.Tensor:
    """The one-hot `labels` with `smoothing` of each spread evenly over the classes (a
    blank row, all zeros, stays all zeros: it weighs nothing)."""
    if not smoothing:
        return labels
    classes = tf.cast(tf.shape(labels)[-1], labels.dtype)
    labelled = tf.reduce_sum(labels, axis=-1, keepdims=True)
    return labels * (1.0 - smoothing) + labelled * smoothing / classes


def image_weights(labels: tf.Tensor, weights: Optional[Sequence[float]]) -> Optional[tf.Tensor]:
    """Each row's weight from its one-hot label (0 for a blank row), or None: all 1."""
    if weights is None:
        return None
    return tf.linalg.matvec(labels, tf.constant(weights, labels.dtype))


EARLY_STOPPED = "early stopping"  # how metrics.json's `ended` begins for such a run


class EarlyStop(NamedTuple):
    """Where and why a run ends before its last epoch."""

    epoch: int  # the last epoch trained
    best_epoch: int
    best_val_loss: float
    reason: str


def early_stop(
    history: Sequence[dict[str, float]], patience: int, min_delta: float
) -> Optional[EarlyStop]:
    """The first epoch of `history` after which `patience` epochs in a row brought no
    val_loss lower than the best so far by more than `min_delta`; None: go on."""
    if not patience:
        return None
    best, best_epoch, since = math.inf, 0, 0
    for row in history:
        if row["val_loss"] < best - min_delta:
            best, best_epoch, since = row["val_loss"], int(row["epoch"]), 0
        else:
            since += 1
        if since >= patience:
            reason = (
                f"val_loss has not gone below {best:.4f} (epoch {best_epoch}) by more than "
                f"{min_delta:g} for {patience} epoch(s) (--early_stopping_patience)"
            )
            return EarlyStop(int(row["epoch"]), best_epoch, float(best), reason)
    return None
