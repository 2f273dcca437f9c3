"""The tf.data input pipelines: training, validation/test, and inference.

Order of the training pipeline, and why:
  paths -> read+decode+resize (parallel) -> cache (uint8) -> shuffle -> batch
        -> augment whole batches (parallel) -> rescale to [0, 1] -> prefetch
- Decode and resize before `cache()` so that every epoch after the first skips the
  expensive PNG/JPEG decode; keep uint8 there (4x smaller than float).
- Shuffle AFTER the cache: a shuffle before `cache()` would be frozen into it, and every
  epoch would replay the first epoch's order. Without a cache, shuffle the file names
  instead, which is cheaper than shuffling images.
- Augment after `batch()`: one vectorised, XLA-compiled warp per batch instead of
  per-image ops.
- Each augmentation batch gets its own stateless seed from `Dataset.random`, so the
  pipeline is reproducible from `seed` and independent of map parallelism.
"""

import functools
import os
from typing import NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

from rps_tfdata.augment import IDGAugmentation

RESIZE_METHODS = ("pil_nearest", "bilinear", "area")
CACHE_MODES = ("memory", "disk", "none")
AUTOTUNE = tf.data.AUTOTUNE


class PipelineOptions(NamedTuple):
    """How images are read and fed; see the flags of `rps_tfdata.train` for meanings."""

    image_size: tuple[int, int] = (150, 150)
    batch_size: int = 32
    resize_method: str = "pil_nearest"
    cache: str = "memory"
    cache_path: str = ""  # folder for cache="disk"
    deterministic: bool = True
    parallel_calls: int = AUTOTUNE  # of the decode and augment maps
    threadpool_size: int = 0  # 0: TensorFlow's shared pool; N: a private pool of N threads
    prefetch: int = AUTOTUNE  # batches


# Source sides up to this read PIL's exact indices from a table; larger ones (rare)
# use the product formula, which can pick the neighbouring pixel where PIL's float
# accumulation lands just below an integer.
_TABLE_MAX_SIDE = 4096


@functools.lru_cache(maxsize=8)
def _pil_nearest_table(size_out: int) -> np.ndarray:
    """PIL's NEAREST source indices for every source side 0.._TABLE_MAX_SIDE: (sides, size_out).

    PIL starts at `scale / 2` and adds `scale` once per output pixel in float64, then
    truncates. Where `(k + 1/2) * scale` is an exact integer the accumulated rounding
    decides between two pixels, so the product formula is wrong there; NumPy's cumsum
    accumulates left to right exactly as PIL does.
    """
    sides = np.arange(_TABLE_MAX_SIDE + 1, dtype=np.float64)[:, None]
    steps = np.repeat(sides / size_out, size_out, axis=1)
    steps[:, 0] *= 0.5
    last = np.maximum(sides.astype(np.int64) - 1, 0)
    return np.minimum(np.cumsum(steps, axis=1).astype(np.int64), last).astype(np.int16)


def pil_nearest_indices(size_in: tf.Tensor, size_out: int) -> tf.Tensor:
    """Source indices of PIL's NEAREST resize from `size_in` to `size_out` pixels.

    `tf.image.resize(method="nearest")` picks a neighbouring source pixel at some sizes
    (8-10% of pixels from 160 or 180 to 150); these indices match PIL (and so IDG's
    `load_img`) bit for bit up to 4,096 source pixels. Both candidates are computed and
    one selected (no `tf.cond`, which cost 15% of decode throughput in a tf.data map).
    """
    size_in = tf.cast(size_in, tf.int32)
    table = tf.constant(_pil_nearest_table(size_out))
    exact = tf.cast(tf.gather(table, tf.minimum(size_in, _TABLE_MAX_SIDE)), tf.int32)
    scale = tf.cast(size_in, tf.float64) / size_out
    product = tf.cast((tf.range(size_out, dtype=tf.float64) + 0.5) * scale, tf.int32)
    return tf.where(size_in <= _TABLE_MAX_SIDE, exact, tf.minimum(product, size_in - 1))


def resize(image: tf.Tensor, image_size: tuple[int, int], method: str) -> tf.Tensor:
    """Resizes one uint8 (h, w, 3) image to `image_size`, keeping uint8."""
    height, width = image_size
    if method == "pil_nearest":
        shape = tf.shape(image)
        rows = pil_nearest_indices(shape[0], height)
        cols = pil_nearest_indices(shape[1], width)
        return tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method must be one of {RESIZE_METHODS}. Received: {method!r}")
    resized = tf.image.resize(image, image_size, method=method)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """Decodes PNG, JPEG, BMP (and GIF's first frame) bytes to uint8 RGB.

    JPEG uses the accurate integer DCT, which matches PIL; TF's default fast DCT differs
    by up to 3 levels. Alpha is dropped and grey is replicated, as PIL's convert("RGB").
    """
    return tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )


def load_image(path: tf.Tensor, image_size: tuple[int, int], method: str) -> tf.Tensor:
    """Reads, decodes and resizes one image file to uint8 (height, width, 3)."""
    image = resize(decode_image(tf.io.read_file(path)), image_size, method)
    image.set_shape([*image_size, 3])
    return image


def rescale(images: tf.Tensor) -> tf.Tensor:
    """uint8 or 0..255 float -> float32 in [0, 1], IDG's `rescale=1/255`."""
    return tf.cast(images, tf.float32) * (1.0 / 255.0)


def _with_options(dataset: tf.data.Dataset, options: PipelineOptions) -> tf.data.Dataset:
    tf_options = tf.data.Options()
    # Determinism makes runs repeatable and measured free here (BUILD.md: no change in
    # pipeline throughput); --nodeterministic lets parallel maps return out of order.
    tf_options.deterministic = options.deterministic
    tf_options.autotune.enabled = True
    if options.threadpool_size:
        tf_options.threading.private_threadpool_size = options.threadpool_size
    return dataset.with_options(tf_options)


def _disk_cache_file(options: PipelineOptions, name: str) -> str:
    """One cache file per dataset and image setting, so a changed size never reads stale data."""
    os.makedirs(options.cache_path, exist_ok=True)
    height, width = options.image_size
    return os.path.join(options.cache_path, f"{name}_{height}x{width}_{options.resize_method}")


def _load_and_cache(
    paths: Sequence[str],
    labels: Sequence[int],
    num_classes: int,
    options: PipelineOptions,
    *,
    shuffle: bool,
    seed: Optional[int],
    name: str,
) -> tf.data.Dataset:
    """(path, label) -> (uint8 image, one-hot label), cached, shuffled if asked."""
    dataset = tf.data.Dataset.from_tensor_slices((list(paths), list(labels)))
    if shuffle and options.cache == "none":
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda path, label: (
            load_image(path, options.image_size, options.resize_method),
            tf.one_hot(label, num_classes),
        ),
        num_parallel_calls=options.parallel_calls,
    )
    if options.cache != "none":
        dataset = dataset.cache(_disk_cache_file(options, name) if options.cache == "disk" else "")
        if shuffle:
            dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return dataset


def make_dataset(
    paths: Sequence[str],
    labels: Sequence[int],
    num_classes: int,
    options: PipelineOptions,
    *,
    augmentation: Optional[IDGAugmentation] = None,
    shuffle: bool = False,
    seed: Optional[int] = None,
    name: str = "data",
) -> tf.data.Dataset:
    """Builds a batched (images in [0, 1], one-hot labels) dataset over files.

    Args:
      paths, labels: the files and their integer labels (see `rps_tfdata.index`).
      num_classes: length of the one-hot labels.
      options: image size, batch size, resize method, cache, determinism.
      augmentation: applied to every batch when given (training; the seed's
        augmented validation); None for plain evaluation.
      shuffle: reshuffle every epoch; False keeps file order.
      seed: seeds the shuffle and the augmentation; None draws fresh randomness.
      name: names this dataset's file with `cache="disk"` (one file per dataset).

    Returns:
      A prefetching dataset of (float32 (b, h, w, 3), float32 (b, num_classes)).
    """
    if not paths:
        raise ValueError("make_dataset needs at least one image file; the subset is empty")
    dataset = _load_and_cache(
        paths, labels, num_classes, options, shuffle=shuffle, seed=seed, name=name
    )
    # IDG yields a partial last batch; keep it, so every image is seen every epoch.
    dataset = dataset.batch(options.batch_size, drop_remainder=False)
    if augmentation is None:
        dataset = dataset.map(
            lambda x, y: (rescale(x), y), num_parallel_calls=options.parallel_calls
        )
    else:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip(dataset, seeds.batch(2))
        dataset = dataset.map(
            lambda batch, batch_seed: (
                rescale(
                    augmentation(tf.cast(batch[0], tf.float32), training=True, seed=batch_seed)
                ),
                batch[1],
            ),
            num_parallel_calls=options.parallel_calls,
        )
    return _with_options(dataset.prefetch(options.prefetch), options)


def make_image_dataset(paths: Sequence[str], options: PipelineOptions) -> tf.data.Dataset:
    """Batches of images in [0, 1] over `paths`, in order, for prediction."""
    dataset = tf.data.Dataset.from_tensor_slices(list(paths))
    dataset = dataset.map(
        lambda path: load_image(path, options.image_size, options.resize_method),
        num_parallel_calls=options.parallel_calls,
    )
    dataset = dataset.batch(options.batch_size).map(
        rescale, num_parallel_calls=options.parallel_calls
    )
    return _with_options(dataset.prefetch(options.prefetch), options)
