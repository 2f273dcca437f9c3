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

import os
from typing import NamedTuple, Optional, Sequence

import tensorflow as tf

from rps_tfdata.core.augment import IDGAugmentation
from rps_tfdata.core.images import load_image, rescale

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
