"""The epochs of a prepared split, as tf.data pipelines.

`training_batches` yields the batches of epochs [start, end) as ONE pipeline:
  epoch -> image ids in the epoch's order -> pixels (parallel) -> batch
        -> [augment the batch (parallel, XLA)] -> prefetch
Batches cross to the device as uint8 pixels (a quarter of float32's bytes) unless the
pipeline augments: the bilinear warp makes fractions, so augmented batches cross as
float32 on the same 0..255 scale. The step rescales to [0, 1] (`images.rescale`).
Each epoch's order, and each image's augmentation, is a pure function of (seed, epoch,
image id): epoch 7 is the same epoch whether the run started at 0 or resumed at 7, and
an image's augmentation does not depend on which batch, replica or worker holds it. The
order is a full permutation (`index_shuffle`), as IDG's, with no shuffle buffer to fill.
"""

from typing import Optional

import tensorflow as tf

from rps_tfdata.core.augment import IDGAugmentation
from rps_tfdata.core.reading import Prepared, read_epoch, with_options

# The seeds of a row that holds no image (a batch's padding): every real image's are >= 0.
NO_IMAGE = -1


def image_seeds(seed: int, epoch: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """(batch, 2) augmentation seeds: a function of (seed, epoch, image id) alone."""
    epoch = tf.cast(epoch, tf.int64)
    low = epoch * (1 << 32) + tf.cast(ids, tf.int64)
    return tf.stack([tf.fill(tf.shape(low), tf.constant(seed, tf.int64)), low], axis=1)


def _batches(
    prepared: Prepared,
    epoch: tf.Tensor,
    *,
    seed: int,
    shuffle: bool,
    augmentation: Optional[IDGAugmentation],
    batch_size: int,
    skip_images=0,
) -> tf.data.Dataset:
    """One epoch: (images, one-hot labels, per-image seeds) batches, images uint8 or (when
    augmented) float32 on the 0..255 scale; the seeds let the train step augment on the
    device as the pipeline would on the host.
    The epoch's first `skip_images` positions (a resumed epoch's finished steps) are left
    out before any pixel is read."""
    options, count = prepared.options, len(prepared.paths)
    first = tf.minimum(tf.cast(skip_images, tf.int64), count)
    order_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])

    def position_of(places: tf.Tensor) -> tf.Tensor:
        if not shuffle:
            return places
        return tf.random.experimental.index_shuffle(places, order_seed, count - 1)

    labels = tf.one_hot(tf.constant(prepared.labels, tf.int32), prepared.num_classes)
    ids = tf.constant(prepared.ids, tf.int64)

    def labelled(i: tf.Tensor, pixels: tf.Tensor, readable: tf.Tensor):
        # An unreadable image keeps its place with no label: the step does not learn from it.
        label = tf.gather(labels, i) * tf.cast(readable, tf.float32)
        return pixels, label, tf.gather(ids, i)

    dataset = read_epoch(prepared, first, position_of).map(labelled)
    # IDG yields a partial last batch; keep its images, so every image is seen every epoch.
    dataset = dataset.batch(batch_size, drop_remainder=False)

    def finish(images: tf.Tensor, labels: tf.Tensor, batch_ids: tf.Tensor):
        images, labels, batch_ids = _padded(images, labels, batch_ids, batch_size)
        seeds = tf.where(batch_ids[:, None] >= 0, image_seeds(seed, epoch, batch_ids), NO_IMAGE)
        if augmentation is not None:
            images = augmentation(tf.cast(images, tf.float32), training=True, seed=seeds)
        return images, labels, seeds

    return dataset.map(finish, num_parallel_calls=options.parallel_calls)


def _padded(images: tf.Tensor, labels: tf.Tensor, ids: tf.Tensor, batch_size: int):
    """A batch filled to `batch_size` rows with blanks that hold no image: no label, id -1
    (seeds NO_IMAGE). Every batch then has one static shape, so the steps trace and
    compile once: a partial last batch would be a second shape (a second XLA
    compilation); the step learns from labelled rows only."""
    missing = batch_size - tf.shape(ids)[0]
    images = tf.pad(images, [[0, missing], [0, 0], [0, 0], [0, 0]])
    labels = tf.pad(labels, [[0, missing], [0, 0]])
    ids = tf.pad(ids, [[0, missing]], constant_values=-1)
    images.set_shape([batch_size, *images.shape[1:]])
    labels.set_shape([batch_size, labels.shape[1]])
    ids.set_shape([batch_size])
    return images, labels, ids


def epoch_batches(
    prepared: Prepared, epoch: int, *, seed: int, augmentation: Optional[IDGAugmentation] = None
) -> tf.data.Dataset:
    """One shuffled epoch on its own, from a splittable source (the positions 0..n-1), as
    the tf.data service's dynamic sharding needs; pixels are read from files (or the disk
    cache) by whoever runs it."""
    if prepared.images is not None:
        raise ValueError("a pipeline for the tf.data service cannot hold the memory cache")
    return _one_epoch(prepared, epoch, seed=seed, shuffle=True, augmentation=augmentation)


def _one_epoch(
    prepared: Prepared,
    epoch: int,
    *,
    seed: int,
    shuffle: bool,
    augmentation: Optional[IDGAugmentation],
) -> tf.data.Dataset:
    """`_batches` of one epoch at the options' batch size, prefetched."""
    _require_images(prepared)
    dataset = _batches(
        prepared,
        tf.constant(epoch, tf.int64),
        seed=seed,
        shuffle=shuffle,
        augmentation=augmentation,
        batch_size=prepared.options.batch_size,
    )
    return with_options(dataset.prefetch(prepared.options.prefetch), prepared.options)


def pixel_dtype(augmentation: Optional[IDGAugmentation]) -> tf.DType:
    """The dtype of the batches' images: uint8, or float32 when the pipeline augments."""
    return tf.uint8 if augmentation is None else tf.float32


def _empty_batches(prepared: Prepared, dtype: tf.DType, batch_size: int) -> tf.data.Dataset:
    """Batches of blanks only, which pad a worker's epoch to the steps every worker takes."""
    height, width = prepared.options.image_size
    return tf.data.Dataset.from_tensors(
        (
            tf.zeros((batch_size, height, width, 3), dtype),
            tf.zeros((batch_size, prepared.num_classes), tf.float32),
            tf.fill((batch_size, 2), tf.constant(NO_IMAGE, tf.int64)),
        )
    ).repeat()


def training_batches(
    prepared: Prepared,
    *,
    seed: int,
    start_epoch: int = 0,
    end_epoch: int = 1,
    augmentation: Optional[IDGAugmentation] = None,
    batch_size: Optional[int] = None,
    batches_per_epoch: Optional[int] = None,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """The shuffled (and augmented, when given) batches of epochs [start_epoch, end_epoch),
    one after another, prefetched across epoch boundaries.

    `batch_size`: per batch (one replica's share); default the options' batch size.
    `batches_per_epoch`: pad each epoch with empty batches to this many, so that every
    worker of a distributed run takes the same number of steps.
    `skip_batches`: batches of `start_epoch` already trained (a run resumed inside it);
    their images are never read.
    """
    _require_images(prepared)
    batch_size = batch_size or prepared.options.batch_size

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        skipped = tf.where(epoch == start_epoch, tf.constant(skip_batches, tf.int64), 0)
        dataset = _batches(
            prepared,
            epoch,
            seed=seed,
            shuffle=True,
            augmentation=augmentation,
            batch_size=batch_size,
            skip_images=skipped * batch_size,
        )
        if batches_per_epoch is not None:
            blanks = _empty_batches(prepared, pixel_dtype(augmentation), batch_size)
            padded = dataset.concatenate(blanks)
            dataset = padded.take(batches_per_epoch - skipped)
        return dataset

    dataset = tf.data.Dataset.range(start_epoch, end_epoch).flat_map(epoch_batches)
    return with_options(dataset.prefetch(prepared.options.prefetch), prepared.options)


def evaluation_batches(
    prepared: Prepared,
    *,
    augmentation: Optional[IDGAugmentation] = None,
    seed: int = 0,
    epoch: int = 0,
) -> tf.data.Dataset:
    """The split's (images, labels) batches in order, uint8; augmented (the seed's
    validation, float32 on the 0..255 scale) only when given."""
    dataset = _one_epoch(prepared, epoch, seed=seed, shuffle=False, augmentation=augmentation)
    return dataset.map(lambda images, labels, seeds: (images, labels))


def _require_images(prepared: Prepared) -> None:
    if not prepared.paths:
        raise ValueError("the subset holds no readable image file")


def steps_per_epoch(prepared: Prepared) -> int:
    """Batches in one epoch (the last one may be partial)."""
    return -(-len(prepared.paths) // prepared.options.batch_size)
