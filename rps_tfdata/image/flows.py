"""The passes of a drop-in flow: what one of ImageDataGenerator's iterators yields, as one
`tf.data.Dataset`, through the trainer's input pipeline.

A flow's images are read once (`input_pipeline.prepare`: header screen, decode, uint8
cache) or are the caller's array. Each pass over the dataset (each epoch of `model.fit`)
draws its own number from the flow's seed (`Dataset.random`, drawn anew per iteration),
as each IDG epoch reshuffles and redraws: the number orders the images
(`input_pipeline.ordered_pixels`) and, with each image's identity, seeds its
augmentation, so the same seed repeats the same sequence of passes. Then, per batch:
augment (one fused warp), standardise (`standardize`), the caller's data type and
layout, optional writing of the images (`save_to_dir`), and the targets and sample
weights of the flow; the last batch is partial, as IDG's (this face never pads).
"""

import os
from typing import NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

from rps_tfdata.infra import atomic, fs
from rps_tfdata.pipeline import input_pipeline
from rps_tfdata.pipeline.input_pipeline import Prepared
from rps_tfdata.pipeline.transforms import standardize
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation

_as_written = tf.autograph.experimental.do_not_convert
# What `save_to_dir` can write, as IDG names the formats, and the encoder of each.
SAVE_FORMATS = ("png", "jpeg", "jpg")
# PIL's JPEG quality when none is given (IDG saves with PIL's defaults).
_PIL_JPEG_QUALITY = 75


class Treatment(NamedTuple):
    """What happens to each image after it is read: a generator's settings."""

    augmentation: Optional[IDGAugmentation]
    standardization: standardize.Standardization
    python_function: bool  # `preprocessing_function` runs in Python (`standardize`)
    dtype: tf.DType
    channels_first: bool


class Outputs(NamedTuple):
    """What each element holds besides the images, one row per image of the flow.

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

    def rows(self, positions: Sequence[int]) -> "Outputs":
        """These outputs for the images at `positions` (the readable files, in order)."""
        pick = np.asarray(positions, np.int64)

        def take(arrays):
            return tuple(np.asarray(a)[pick] for a in arrays)

        return self._replace(
            targets=take(self.targets),
            weights=None if self.weights is None else np.asarray(self.weights)[pick],
            extra_inputs=take(self.extra_inputs),
        )


class Saving(NamedTuple):
    """`save_to_dir`: where augmented images go, named as IDG names them."""

    folder: str
    prefix: str
    format: str


def batches(
    prepared: Prepared,
    outputs: Outputs,
    treatment: Treatment,
    *,
    batch_size: int,
    shuffle: bool,
    seed: Optional[int],
    saving: Optional[Saving] = None,
) -> tf.data.Dataset:
    """The flow's batches, pass after pass: a new order (when `shuffle`) and new
    augmentation at each iteration of the dataset, the same sequence for the same `seed`
    (None: a new sequence in each process). `len()` of the result is the batches of a
    pass; `outputs` has one row per image of `prepared`."""
    options = prepared.options
    base_seed = 0 if seed is None else int(seed)
    columns = _columns(outputs)
    ids = tf.constant(prepared.ids, tf.int64)

    @_as_written
    def finish(epoch: tf.Tensor, positions: tf.Tensor, pixels: tf.Tensor):
        x = tf.cast(pixels, tf.float32)
        if treatment.augmentation is not None:
            seeds = input_pipeline.augmentation_seeds(base_seed, epoch, tf.gather(ids, positions))
            x = treatment.augmentation(x, training=True, seed=seeds)
        if treatment.channels_first:  # standardised as IDG does, in the caller's layout
            x = tf.transpose(x, [0, 3, 1, 2])
        x = standardize.standardize(
            x, treatment.standardization, python_function=treatment.python_function
        )
        if saving is not None:
            x = _saved(x, positions, epoch, saving, treatment.channels_first)
        return _element(tf.cast(x, treatment.dtype), positions, outputs, columns)

    @_as_written
    def one_pass(draw: tf.Tensor) -> tf.data.Dataset:
        epoch = tf.math.floormod(draw, 2**31)
        places = input_pipeline.ordered_pixels(prepared, epoch, seed=base_seed, shuffle=shuffle)
        pixels = places.map(_as_written(lambda position, image, readable: (position, image)))
        return pixels.batch(batch_size).map(
            _as_written(lambda positions, images: finish(epoch, positions, images)),
            num_parallel_calls=options.parallel_calls,
        )

    passes = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    dataset = passes.flat_map(one_pass).prefetch(options.prefetch)
    per_pass = -(-prepared.count // batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(per_pass))
    return input_pipeline.with_options(dataset, options)


def _columns(outputs: Outputs) -> dict[str, tuple[tf.Tensor, ...]]:
    return {
        "targets": tuple(tf.constant(t) for t in outputs.targets),
        "weights": () if outputs.weights is None else (tf.constant(outputs.weights),),
        "extra_inputs": tuple(tf.constant(e) for e in outputs.extra_inputs),
    }


def _element(x: tf.Tensor, positions: tf.Tensor, outputs: Outputs, columns: dict):
    """One batch as IDG's iterator yields it: x alone, (x, y) or (x, y, weights); x is a
    tuple when there are more inputs, y a tuple when there are several targets."""

    def rows(name: str) -> tuple[tf.Tensor, ...]:
        return tuple(tf.gather(column, positions) for column in columns[name])

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


def saving(
    save_to_dir: Optional[str], save_prefix: str, save_format: str, *, channels: int
) -> Optional[Saving]:
    """IDG's `save_to_dir` settings checked, or None when nothing is saved.

    Raises:
      ValueError: a format this cannot write, RGBA as JPEG, or a folder that is missing.
    """
    if not save_to_dir:
        return None
    if save_format not in SAVE_FORMATS:
        raise ValueError(f"save_format={save_format!r}: expected one of {SAVE_FORMATS}")
    if channels == 4 and save_format != "png":
        raise ValueError(
            f"save_format={save_format!r} cannot hold RGBA images; use save_format='png'"
        )
    if channels not in (1, 3, 4):
        raise ValueError(f"save_to_dir writes images of 1, 3 or 4 channels, not {channels}")
    if not fs.isdir(save_to_dir):
        raise ValueError(f"save_to_dir {save_to_dir!r} is not a folder; create it first")
    return Saving(save_to_dir, save_prefix, save_format)


def _saved(
    x: tf.Tensor, positions: tf.Tensor, epoch: tf.Tensor, saving: Saving, channels_first: bool
) -> tf.Tensor:
    """Writes each image of the batch as IDG's `save_to_dir` does (stretched to 0..255,
    truncated to 8 bits, PREFIX_INDEX_HASH.FORMAT, INDEX its place in the flow's files)
    and returns the batch once they are written."""
    images = tf.transpose(x, [0, 2, 3, 1]) if channels_first else x
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    shifted = images - low
    high = tf.reduce_max(shifted, axis=[1, 2, 3], keepdims=True)
    pixels = tf.cast(tf.floor(tf.where(high != 0, shifted / high, shifted) * 255), tf.uint8)
    if saving.format == "png":
        encoded = tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string)
    else:
        encoded = tf.map_fn(
            lambda image: tf.io.encode_jpeg(image, quality=_PIL_JPEG_QUALITY),
            pixels,
            fn_output_signature=tf.string,
        )
    places = tf.strings.as_string(positions)
    hashes = tf.strings.to_hash_bucket_fast(
        tf.strings.join([tf.strings.as_string(epoch), places], "/"), 10**7
    )
    names = tf.strings.join(
        [saving.prefix, "_", places, "_", tf.strings.as_string(hashes), ".", saving.format]
    )
    written = tf.py_function(
        lambda names, data: _write_all(saving.folder, names, data), [names, encoded], tf.int64
    )
    with tf.control_dependencies([written]):
        return tf.identity(x)


def _write_all(folder: str, names: tf.Tensor, data: tf.Tensor) -> int:
    """Each encoded image into `folder` under a temporary name, renamed into place."""
    for name, contents in zip(names.numpy(), data.numpy(), strict=True):
        with atomic.writing(os.path.join(folder, name.decode())) as temporary:
            with fs.open_file(temporary, "wb") as f:
                f.write(contents)
    return len(names)
