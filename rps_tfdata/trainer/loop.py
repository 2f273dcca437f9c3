"""The training loop's pieces: the train and predict steps, and one epoch.

A custom loop rather than `Model.fit`: its state is the model, the optimizer and an
epoch counter that a checkpoint holds whole, and every random thing in an epoch (order,
augmentation, dropout) is derived from (seed, epoch), so a resumed epoch is the same
epoch (`rps_tfdata.trainer.run_state`). The same loop serves every `tf.distribute`
strategy (Keras 3's `fit` fails under `MultiWorkerMirroredStrategy`; see BUILD.md).
"""

import functools
import sys
import time
from typing import Callable, Iterator, NamedTuple, Optional, Sequence

import keras
import tensorflow as tf

from rps_tfdata.pipeline.reading.decode import rescale
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation
from rps_tfdata.trainer import recipe

# Keras clips probabilities to [PROBABILITY_CLIP, 1 - PROBABILITY_CLIP] in its categorical
# cross-entropy; so do the train step and the evaluation's loss (in NumPy).
PROBABILITY_CLIP = 1e-7


class StepSums(NamedTuple):
    """What one train step returns, summed over every replica and worker."""

    loss_sum: tf.Tensor  # of the labelled images' cross-entropies
    correct: tf.Tensor
    images: tf.Tensor  # labelled images: the ones learnt from
    unreadable: tf.Tensor  # images with no label: their files failed to decode
    stops: tf.Tensor  # replicas whose worker was asked to stop


def added(totals: StepSums, sums: StepSums) -> StepSums:
    """`totals` plus one step's `sums`: the one addition, in the graph loop and on the
    host alike, so that any loop size gives the same float32 totals."""
    return StepSums(*(total + value for total, value in zip(totals, sums, strict=True)))


class Steps(NamedTuple):
    """The compiled step functions of one model and optimizer."""

    train: tf.types.experimental.PolymorphicFunction  # (images, labels, seeds)[, stop] -> StepSums
    predict: tf.types.experimental.PolymorphicFunction  # images -> probabilities
    # (iterator, steps, stop, totals) -> (totals + each step's StepSums, steps taken)
    train_loop: tf.types.experimental.PolymorphicFunction


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


class TrainingLoss(NamedTuple):
    """What the training loss adds to the seed's cross-entropy (`rps_tfdata.trainer.recipe`)."""

    label_smoothing: float = 0.0
    class_weights: Optional[Sequence[float]] = None  # per class; None: every image weighs 1


def training_losses(labels: tf.Tensor, probabilities: tf.Tensor, loss: TrainingLoss) -> tf.Tensor:
    """Each row's training loss: the cross-entropy against its smoothed label, times
    its class's weight (0 for a blank row)."""
    losses = cross_entropy(recipe.training_targets(labels, loss.label_smoothing), probabilities)
    weights = recipe.image_weights(labels, loss.class_weights)
    return losses if weights is None else losses * weights


def make_steps(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    *,
    strategy: tf.distribute.Strategy,
    augmentation: Optional[IDGAugmentation] = None,
    jit_compile: bool = False,
    loss: Optional[TrainingLoss] = None,
) -> Steps:
    """Builds the train, several-step and predict functions; `model` and `optimizer`
    were built in `strategy.scope()`. `augmentation`: augment inside the train step (on
    the device) with each image's seed from the pipeline; None when the pipeline
    augmented already. `jit_compile`: XLA-compile each replica's step. `loss`: label
    smoothing and class weights of the training loss (default: neither)."""
    # No Python control flow on tensors in the steps but the several-step loop's: they
    # trace without autograph's conversion (the first step of a run starts sooner).
    replica_step = tf.function(
        _replica_step(model, optimizer, augmentation, loss or TrainingLoss()),
        jit_compile=jit_compile,
        autograph=False,
    )

    def step(batch, stop: tf.Tensor) -> StepSums:
        sums = strategy.run(replica_step, args=(*batch, stop))
        local = StepSums(*(strategy.reduce(tf.distribute.ReduceOp.SUM, s, axis=None) for s in sums))
        # The all-reduced figures are the same on every replica: one replica's, not a sum.
        return local._replace(
            unreadable=local.unreadable / strategy.num_replicas_in_sync,
            stops=local.stops / strategy.num_replicas_in_sync,
        )

    @functools.partial(tf.function, autograph=False)
    def train(batch, stop=None) -> StepSums:
        return step(batch, tf.constant(0.0) if stop is None else stop)

    @tf.function
    def train_loop(iterator, steps: tf.Tensor, stop: tf.Tensor, totals: StepSums):
        taken = tf.constant(0)
        for _ in tf.range(steps):
            sums = step(next(iterator), stop)
            totals = added(totals, sums)
            taken += 1
            if sums.stops > 0:  # every worker sees the same all-reduced request
                break
        return totals, taken

    return Steps(train, make_predict(model), train_loop)


def _replica_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    augmentation: Optional[IDGAugmentation],
    loss: TrainingLoss,
) -> Callable[..., StepSums]:
    """One replica's step. It divides its loss sum by the number of images in the whole
    step (all replicas, all workers), so the summed gradients are those of the step's
    mean loss whatever the number of replicas, and a batch padded with blanks weighs its
    images as an unpadded one would. The same all-reduce carries the images whose file
    failed to decode and each worker's stop request (`stop`, 1.0 when its process was
    asked to stop), so every worker learns of one at the same step."""
    variables = model.trainable_variables

    def replica_step(images: tf.Tensor, labels: tf.Tensor, seeds: tf.Tensor, stop: tf.Tensor):
        labelled = tf.reduce_sum(labels, axis=-1)  # 1 per image, 0 per blank
        count = tf.reduce_sum(labelled)
        # Blanks with seeds are images whose file failed to decode; the others are padding.
        seeded = tf.reduce_sum(tf.cast(seeds[:, 1] >= 0, tf.float32))
        context = tf.distribute.get_replica_context()
        flags = tf.stack([count, seeded - count, tf.identity(stop)])  # one all-reduce
        total, lost, stops = tf.unstack(context.all_reduce(tf.distribute.ReduceOp.SUM, flags))

        def learn():
            pixels = tf.cast(images, tf.float32)
            if augmentation is not None:
                pixels = augmentation(pixels, training=True, seed=seeds)
            with tf.GradientTape() as tape:
                probabilities = model(rescale(pixels), training=True)
                losses = training_losses(labels, probabilities, loss)
                scaled = optimizer.scale_loss(tf.reduce_sum(losses) / tf.maximum(total, 1.0))
            right = tf.argmax(probabilities, axis=-1) == tf.argmax(labels, axis=-1)
            sums = [tf.reduce_sum(losses), tf.reduce_sum(tf.cast(right, tf.float32) * labelled)]
            return sums + tape.gradient(scaled, variables)

        def idle():  # a batch of blanks only: nothing to learn
            return [tf.constant(0.0), tf.constant(0.0)] + [tf.zeros_like(v) for v in variables]

        loss_sum, correct, *gradients = tf.cond(count > 0, learn, idle)
        optimizer.apply(gradients, variables)
        return StepSums(loss_sum, correct, count, lost, stops)

    return replica_step


def make_predict(model: keras.Model) -> tf.types.experimental.PolymorphicFunction:
    """images (0..255, as batches carry them) -> float32 probabilities, compiled once
    (every batch has one shape: `inputs.evaluation_batches` pads the last)."""
    return tf.function(
        lambda images: tf.cast(model(rescale(images), training=False), tf.float32), autograph=False
    )


class ProfileWindow(NamedTuple):
    """A profiler trace of an epoch's steps `first`..`last` (from 1) into `folder`."""

    first: int
    last: int
    folder: str


def profile_window(
    span: tuple[int, int], epoch: int, steps_in_epoch: int, folder: str
) -> Optional[ProfileWindow]:
    """The global steps `span` (first, last; from 1) as epoch `epoch`'s window: the part
    in the epoch that holds the first step (a trace ends with its epoch, before
    validation); None when the first step is not in this epoch."""
    first, last = (step - epoch * steps_in_epoch for step in span)
    if not 1 <= first <= steps_in_epoch:
        return None
    return ProfileWindow(first, min(last, steps_in_epoch), folder)


class EpochControls(NamedTuple):
    """How an epoch's steps are run, besides the batches themselves.

    Attributes:
      steps_per_loop: steps per call of the compiled loop (`Steps.train_loop`).
      save_every: a checkpoint every this many steps (but the last); 0: none inside.
      save: records the epoch's progress (the checkpoint inside the epoch).
      stop_signal: the name of a signal that asks this worker to stop, or "".
      profile: the steps to trace, if any.
      progress: a live bar, if any.
    """

    steps_per_loop: int = 1
    save_every: int = 0
    save: Optional[Callable[[EpochProgress], None]] = None
    stop_signal: Callable[[], str] = lambda: ""
    profile: Optional[ProfileWindow] = None
    progress: Optional[keras.utils.Progbar] = None


DEFAULT_CONTROLS = EpochControls()


def run_epoch(
    steps: Steps,
    batches: Iterator,
    num_steps: Optional[int],
    controls: EpochControls = DEFAULT_CONTROLS,
    start: EpochProgress = EPOCH_START,
) -> Optional[EpochResult]:
    """Trains the epoch's steps `start.step + 1 .. num_steps` from `batches` (num_steps
    None: until they run out, one step a call), adding to `start`'s totals, in calls of
    `controls.steps_per_loop` steps. Every `save_every` steps (but the last) `save`
    records the totals. Returns None when `stop_signal()` named a signal here or on another
    worker: every worker learns of it in the same step (`make_steps`), saves that step
    and stops there.

    The sums stay on the device; the host reads the stop requests (and a progress bar
    the loss) once per call: a wait for the call's last step, not for each step.
    """
    begin = time.perf_counter()
    totals = StepSums(*(tf.constant(value, tf.float32) for value in (*start[1:4], 0.0, 0.0)))
    marks = _marks(controls.save_every, controls.profile)
    step = start.step
    while num_steps is None or step < num_steps:
        requested = tf.constant(1.0 if controls.stop_signal() else 0.0)
        before = totals
        _profile_edge(controls.profile, step, starting=True)
        if controls.steps_per_loop == 1:
            batch = next(batches, None)
            if batch is None:
                break
            totals = added(totals, steps.train(batch, requested))
            step += 1
        else:
            size = _call_size(step, num_steps, controls.steps_per_loop, marks)
            totals, taken = steps.train_loop(batches, tf.constant(size), requested, totals)
            step += int(taken)  # the call's one wait
        _profile_edge(controls.profile, step, starting=False)
        if controls.progress is not None:
            images = max(float(totals.images - before.images), 1.0)
            loss = float(totals.loss_sum - before.loss_sum) / images
            controls.progress.update(step, [("loss", loss)])
        stopping = float(totals.stops) > 0
        every = controls.save_every
        due = every and step % every == 0 and step != num_steps
        if controls.save is not None and (stopping or due):
            seconds = start.seconds + time.perf_counter() - begin
            controls.save(EpochProgress(step, *(float(value) for value in totals[:3]), seconds))
        if stopping:
            return None
    images = int(totals.images)
    loss_sum, correct = float(totals.loss_sum), float(totals.correct)
    loss, accuracy = (loss_sum / images, correct / images) if images else (0.0, 0.0)
    seconds = start.seconds + time.perf_counter() - begin
    return EpochResult(loss, accuracy, images, seconds, int(totals.unreadable))


def _marks(save_every: int, profile: Optional[ProfileWindow]) -> Callable[[int], int]:
    """The first step after `step` at which a call must end: a checkpoint's step, or
    just before or at the end of the profiled steps."""
    edges = () if profile is None else (profile.first - 1, profile.last)

    def next_mark(step: int) -> int:
        candidates = [edge for edge in edges if edge > step]
        if save_every:
            candidates.append((step // save_every + 1) * save_every)
        return min(candidates, default=step + (1 << 30))

    return next_mark


def _call_size(step: int, num_steps: int, steps_per_loop: int, next_mark) -> int:
    """Steps in the call after `step`: `steps_per_loop`, cut at the epoch's end and at
    the next step where the host must act."""
    return min(steps_per_loop, num_steps - step, next_mark(step) - step)


def _profile_edge(profile: Optional[ProfileWindow], step: int, *, starting: bool) -> None:
    """Starts the profiler before the call after `step` when that call begins the
    profiled steps; stops it once `step` is their last."""
    if profile is None:
        return
    if starting and step == profile.first - 1:
        tf.profiler.experimental.start(profile.folder)
    elif not starting and step == profile.last:
        tf.profiler.experimental.stop()


def progress_bar(num_steps: int) -> Optional[keras.utils.Progbar]:
    """A live bar on a terminal; None in logs and pipes (one line per epoch there)."""
    return keras.utils.Progbar(num_steps) if sys.stdout.isatty() else None
