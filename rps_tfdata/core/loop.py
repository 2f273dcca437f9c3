"""The training loop's pieces: the train and predict steps, and one epoch.

A custom loop rather than `Model.fit`: its state is the model, the optimizer and an
epoch counter that a checkpoint holds whole, and every random thing in an epoch (order,
augmentation, dropout) is derived from (seed, epoch), so a resumed epoch is the same
epoch (`rps_tfdata.core.run_state`). The same loop serves every `tf.distribute`
strategy (Keras 3's `fit` fails under `MultiWorkerMirroredStrategy`; see BUILD.md).
"""

import sys
import time
from typing import Callable, Iterator, NamedTuple, Optional

import keras
import tensorflow as tf

from rps_tfdata.core.augment import IDGAugmentation
from rps_tfdata.core.images import rescale

# Keras clips probabilities so into its categorical cross-entropy; so do we (and the
# evaluation's loss, in NumPy).
PROBABILITY_CLIP = 1e-7


class StepSums(NamedTuple):
    """What one train step returns, summed over every replica and worker."""

    loss_sum: tf.Tensor  # of the labelled images' cross-entropies
    correct: tf.Tensor
    images: tf.Tensor  # labelled images: the ones learnt from
    unreadable: tf.Tensor  # images with no label: their files failed to decode
    stops: tf.Tensor  # replicas whose worker was asked to stop


class Steps(NamedTuple):
    """The compiled step functions of one model and optimizer."""

    train: tf.types.experimental.PolymorphicFunction  # (images, labels, seeds)[, stop] -> StepSums
    predict: tf.types.experimental.PolymorphicFunction  # images -> probabilities


class EpochProgress(NamedTuple):
    """An epoch's running totals after `step` of its steps: what a checkpoint taken
    inside the epoch keeps, so that a resumed epoch ends with the same figures."""

    step: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    images: float = 0.0
    seconds: float = 0.0


EPOCH_START = EpochProgress()


class EpochResult(NamedTuple):
    """Per-image means over one epoch, how long its training part took, and how many of
    its images could not be decoded (left out of their steps; 0 unless the training
    split's decode waited for the epochs)."""

    loss: float
    accuracy: float
    images: int
    seconds: float
    unreadable: int = 0


def cross_entropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
    """Per-image categorical cross-entropy of one-hot `labels`, clipped as Keras clips."""
    clipped = tf.clip_by_value(
        tf.cast(probabilities, tf.float32), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP
    )
    return -tf.reduce_sum(labels * tf.math.log(clipped), axis=-1)


def make_steps(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    *,
    strategy: tf.distribute.Strategy,
    augmentation: Optional[IDGAugmentation] = None,
    jit_compile: bool = False,
) -> Steps:
    """Builds the train and predict steps; `model` and `optimizer` were built in
    `strategy.scope()`.

    `augmentation`: augment inside the train step (on the device) with each image's
    seed from the pipeline; None when the pipeline augmented already. Each replica
    divides its loss sum by the number of images in the whole step (all replicas,
    all workers), so the summed gradients are those of the step's mean loss, whatever
    the number of replicas, and a partial last step weighs its images as one device would.
    The same all-reduce carries each worker's stop request (`stop`, 1.0 when its process
    was asked to stop), so every worker learns of one at the same step.
    """

    variables = model.trainable_variables

    def replica_step(images: tf.Tensor, labels: tf.Tensor, seeds: tf.Tensor, stop: tf.Tensor):
        labelled = tf.reduce_sum(labels, axis=-1)  # 1 per image, 0 per unreadable one
        count = tf.reduce_sum(labelled)
        unreadable = tf.cast(tf.shape(labels)[0], tf.float32) - count
        context = tf.distribute.get_replica_context()
        flags = tf.stack([count, unreadable, tf.identity(stop)])  # one all-reduce for all
        total, lost, stops = tf.unstack(context.all_reduce(tf.distribute.ReduceOp.SUM, flags))

        def learn():
            pixels = tf.cast(images, tf.float32)
            if augmentation is not None:
                pixels = augmentation(pixels, training=True, seed=seeds)
            with tf.GradientTape() as tape:
                probabilities = model(rescale(pixels), training=True)
                losses = cross_entropy(labels, probabilities)
                scaled = optimizer.scale_loss(tf.reduce_sum(losses) / tf.maximum(total, 1.0))
            right = tf.argmax(probabilities, axis=-1) == tf.argmax(labels, axis=-1)
            sums = [tf.reduce_sum(losses), tf.reduce_sum(tf.cast(right, tf.float32) * labelled)]
            return sums + tape.gradient(scaled, variables)

        def idle():  # an empty padding batch: TensorFlow's convolutions refuse 0 images
            return [tf.constant(0.0), tf.constant(0.0)] + [tf.zeros_like(v) for v in variables]

        loss_sum, correct, *gradients = tf.cond(count > 0, learn, idle)
        optimizer.apply(gradients, variables)
        return StepSums(loss_sum, correct, count, lost, stops)

    replica_step = tf.function(replica_step, jit_compile=jit_compile)

    @tf.function
    def train(batch, stop=None) -> StepSums:
        stop = tf.constant(0.0) if stop is None else stop
        sums = strategy.run(replica_step, args=(*batch, stop))
        local = StepSums(*(strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None) for s in sums))
        # The all-reduced figures are the same on every replica: one replica's, not a sum.
        return local._replace(
            unreadable=local.unreadable / strategy.num_replicas_in_sync,
            stops=local.stops / strategy.num_replicas_in_sync,
        )

    return Steps(train, make_predict(model))


def make_predict(model: keras.Model) -> tf.types.experimental.PolymorphicFunction:
    """images (0..255, as batches carry them) -> float32 probabilities, compiled once (the
    last batch may retrace once)."""
    return tf.function(lambda images: tf.cast(model(rescale(images), training=False), tf.float32))


def run_epoch(
    steps: Steps,
    batches: Iterator,
    num_steps: Optional[int],
    *,
    progress: Optional[keras.utils.Progbar] = None,
    should_stop: Callable[[], str] = lambda: "",
    start: EpochProgress = EPOCH_START,
    save_every: int = 0,
    save: Optional[Callable[[EpochProgress], None]] = None,
) -> Optional[EpochResult]:
    """Trains the epoch's steps `start.step + 1 .. num_steps` from `batches` (num_steps
    None: until they run out), adding to `start`'s totals. Every `save_every` steps (but
    the last) `save(progress)` records the totals. Returns None when `should_stop()`
    turned true here or on another worker: every worker learns of it in the same step
    (`make_steps`), saves that step (`save`) and stops there.

    The sums stay on the device until the epoch ends; each step's stop requests are read
    back (a wait for the step), and a progress bar reads each step's loss.
    """
    begin = time.perf_counter()
    loss_sum, correct, images, unreadable = (
        tf.constant(value, tf.float32)
        for value in (start.loss_sum, start.correct, start.images, 0.0)
    )
    remaining = None if num_steps is None else num_steps - start.step
    feed = batches if remaining is None else (next(batches) for _ in range(remaining))
    for step, batch in enumerate(feed, start=start.step + 1):
        requested = tf.constant(1.0 if should_stop() else 0.0)
        sums = steps.train(batch, requested)
        loss_sum += sums.loss_sum
        correct += sums.correct
        images += sums.images
        unreadable += sums.unreadable
        if progress is not None:
            progress.update(step, [("loss", float(sums.loss_sum) / max(float(sums.images), 1.0))])
        stopping = float(sums.stops) > 0
        due = save_every and step % save_every == 0 and step != num_steps
        if save is not None and (stopping or due):
            seconds = start.seconds + time.perf_counter() - begin
            save(EpochProgress(step, float(loss_sum), float(correct), float(images), seconds))
        if stopping:
            return None
    images = int(images)
    loss, accuracy = (float(loss_sum) / images, float(correct) / images) if images else (0.0, 0.0)
    seconds = start.seconds + time.perf_counter() - begin
    return EpochResult(loss, accuracy, images, seconds, int(unreadable))


def progress_bar(num_steps: int) -> Optional[keras.utils.Progbar]:
    """A live bar on a terminal; None in logs and pipes (one line per epoch there)."""
    return keras.utils.Progbar(num_steps) if sys.stdout.isatty() else None
