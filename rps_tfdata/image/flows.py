"""The drop-in's face of the pass builder: what one of ImageDataGenerator's iterators
yields, as one `tf.data.Dataset`.

A flow's subset is read once by the library's reader (`reader`). Each
pass over the dataset (each epoch of `model.fit`) draws its own number from the flow's
seed (`Dataset.random`, drawn anew per iteration), as each IDG epoch reshuffles and
redraws: the number orders the images and, with each image's id, seeds its augmentation
(`passes.one_pass`), so the same seed repeats the same sequence of passes. This face's
per-batch step then does what IDG does after the augmentation: standardise
(`standardize`), the caller's data type and layout, optional writing of the images
(`save_to_dir`), and the targets and sample weights of the flow; the last batch is
partial, as IDG's (this face never pads).
"""

from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

from rps_tfdata.image import save_to_dir
from rps_tfdata.pipeline import passes
from rps_tfdata.pipeline.passes import Batch
from rps_tfdata.pipeline.reading.prepare import Prepared, as_written
from rps_tfdata.pipeline.transforms import standardize
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation


class Treatment(NamedTuple):
    """What happens to each image after it is read: a generator's settings."""

    augmentation: Optional[IDGAugmentation]
    standardization: standardize.Standardization
    python_function: bool  # `preprocessing_function` runs in Python (`standardize`)
    dtype: tf.DType
    channels_first: bool


class Outputs(NamedTuple):
    """What each element holds besides the images, one row per id of the flow's subset
    (readable or not).

    Attributes:
      targets: the y arrays: none (the images alone), one, or several (IDG's
        "multi_output": a tuple of targets).
      target_is_input: y is the images themselves (class_mode "input").
      weights: sample weights, or None.
      extra_inputs: more model inputs beside the images (`flow((x, misc), ...)`).
    """

    targets: tuple[np.ndarray, ...] = ()
    target_is_input: bool = False
    weights: Optional[np.ndarray] = None
    extra_inputs: tuple[np.ndarray, ...] = ()

    def of_ids(self, ids: Sequence[int]) -> "Outputs":
        """These outputs for the images of these ids (the readable ones, in order)."""
        pick = np.asarray(ids, np.int64)

        def take(arrays):
            return tuple(np.asarray(a)[pick] for a in arrays)

        return self._replace(
            targets=take(self.targets),
            weights=None if self.weights is None else np.asarray(self.weights)[pick],
            extra_inputs=take(self.extra_inputs),
        )


class Flow(NamedTuple):
    """A flow's batches three ways: `dataset()`, pass after pass as the dataset is
    iterated; `one_pass(pass_number, skip_images=0, stop_images=None)`, any one pass on
    its own (the iterator's habits: `next`, `flow[i]`); and `served(seed, passes)`, the
    passes one batch at a time, for the tf.data service (`served`). `when_filled()` is
    `dataset()` built again once a cache the passes fill is full (their gathers alone,
    the same pass numbers drawn), else None. Each builds its dataset when called."""

    dataset: Callable[[], tf.data.Dataset]
    one_pass: Callable[..., tf.data.Dataset]
    served: Callable[[int, Optional[int]], tf.data.Dataset]
    when_filled: Callable[[], Optional[tf.data.Dataset]]
    batches_per_pass: int


def batches(
    prepared: Prepared,
    outputs: Outputs,
    treatment: Treatment,
    *,
    batch_size: int,
    shuffle: bool,
    seed: Optional[int],
    save_to: Optional[save_to_dir.SaveToDir] = None,
) -> Flow:
    """The flow's batches, pass after pass: a new order (when `shuffle`) and new
    augmentation at each iteration of the dataset, the same sequence for the same `seed`
    (None: a new sequence in each process). `len()` of the dataset is the batches of a
    pass; `outputs` has one row per id of `prepared`."""
    base_seed = 0 if seed is None else int(seed)
    columns = _columns(outputs)

    @as_written
    def step(batch: Batch):
        if not prepared.decoded:  # a file a pass could not decode leaves its batch
            batch = _readable_only(batch)
        x = tf.cast(batch.pixels, tf.float32)
        if treatment.channels_first:  # standardised as IDG does, in the caller's layout
            x = tf.transpose(x, [0, 3, 1, 2])
        x = standardize.standardize(
            x, treatment.standardization, python_function=treatment.python_function
        )
        if save_to is not None:
            x = save_to_dir.written(
                x, batch.rows, batch.pass_number, save_to, channels_first=treatment.channels_first
            )
        return _element(tf.cast(x, treatment.dtype), batch.ids, outputs, columns)

    def one(pass_number: tf.Tensor, skip_images: Any = 0, stop_images: Any = None):
        return passes.one_pass(
            prepared,
            pass_number,
            step,
            seed=base_seed,
            batch_size=batch_size,
            shuffle=shuffle,
            augmentation=treatment.augmentation,
            skip_images=skip_images,
            stop_images=stop_images,
        )

    # One generator of pass numbers, whichever dataset of the passes is iterated.
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    pass_numbers = draws.map(as_written(lambda draw: tf.math.floormod(draw, 2**31)))
    per_pass = passes.batches_per_pass(prepared.count, batch_size)
    options = prepared.options

    def over_passes() -> tf.data.Dataset:
        dataset = passes.over_passes(pass_numbers, one, options)
        return dataset.apply(tf.data.experimental.assert_cardinality(per_pass))

    def when_filled() -> Optional[tf.data.Dataset]:
        filling = prepared.filling
        return over_passes() if filling is not None and filling.is_full() else None

    def one_pass(number: Any, skip_images: Any = 0, stop_images: Any = None):
        return passes.prefetched(one(number, skip_images, stop_images), options)

    def served_passes(seed: int, count: Optional[int]) -> tf.data.Dataset:
        return served(one, per_pass, batch_size, seed, options, pass_count=count)

    return Flow(over_passes, one_pass, served_passes, when_filled, per_pass)


_ALL_UNREADABLE = (
    "rps_tfdata: every image of a batch is unreadable (each named above), and an empty "
    "batch would turn a model's loss into NaN: remove those files, or build the flow with "
    "cache='disk', which leaves them out before it returns"
)


def _readable_only(batch: Batch) -> Batch:
    """`batch` without the rows a pass could not read; an error if none is left (IDG
    stops at an unreadable file too)."""
    kept = passes.readable_only(batch)
    check = tf.debugging.assert_greater(tf.size(kept.rows), 0, message=_ALL_UNREADABLE)
    with tf.control_dependencies([check]):
        return kept._replace(pixels=tf.identity(kept.pixels))


def served_pass_number(seed: int, turn: Any) -> tf.Tensor:
    """The number of the `turn`-th pass of `served(seed)`: (seed, turn) alone decide it."""
    pair = tf.stack([tf.constant(seed, tf.int64), tf.cast(turn, tf.int64)])
    return tf.random.stateless_uniform([], pair, maxval=2**31, dtype=tf.int64)


def served(
    one: Callable[..., tf.data.Dataset],
    per_pass: int,
    batch_size: int,
    seed: int,
    options: Any,
    *,
    pass_count: Optional[int] = None,
) -> tf.data.Dataset:
    """`pass_count` passes (None: without end), each batch an element of its own drawn from
    a splittable range (the tf.data service's workers take batches as they are free,
    each running this graph on its own parts of the range: a limit must be the
    range's, not a `take` each worker would apply to its own part): the g-th
    element is batch g mod `per_pass` of pass g // `per_pass`, whose number is drawn
    from (`seed`, pass) alone, so every worker agrees on it; each batch is the flow's
    batch of that pass number."""

    @as_written
    def batch(g: tf.Tensor) -> tf.data.Dataset:
        first = (g % per_pass) * batch_size
        return one(served_pass_number(seed, g // per_pass), first, first + batch_size)

    turns = tf.data.Dataset.range(2**62 if pass_count is None else pass_count * per_pass)
    return passes.prefetched(turns.flat_map(batch), options)


def _columns(outputs: Outputs) -> dict[str, tuple[tf.Tensor, ...]]:
    return {
        "targets": tuple(tf.constant(t) for t in outputs.targets),
        "weights": () if outputs.weights is None else (tf.constant(outputs.weights),),
        "extra_inputs": tuple(tf.constant(e) for e in outputs.extra_inputs),
    }


def _element(x: tf.Tensor, ids: tf.Tensor, outputs: Outputs, columns: dict):
    """One batch as IDG's iterator yields it: x alone, (x, y) or (x, y, weights); x is a
    tuple when there are more inputs, y a tuple when there are several targets."""

    def rows(name: str) -> tuple[tf.Tensor, ...]:
        return tuple(tf.gather(column, ids) for column in columns[name])

    inputs = (x, *rows("extra_inputs")) if outputs.extra_inputs else x
    if outputs.target_is_input:
        y = x
    elif outputs.targets:
        targets = rows("targets")
        y = targets[0] if len(targets) == 1 else targets
    else:
        return inputs
    weights = rows("weights")
    return (inputs, y, weights[0]) if weights else (inputs, y)
