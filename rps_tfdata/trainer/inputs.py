"""The trainer's face of the pass builder: a labelled split becomes the batches its steps
take, epoch after epoch.

The trainer's per-batch step (`_labelled`) pads every batch to one static shape (one
trace, one XLA compilation of the train step), gives each image its one-hot label (none
for a blank row or an image its pass could not decode: the step learns from labelled
rows only) and keeps each image's augmentation seeds (the device path augments inside
the step with them). Each epoch is one pass of `passes.one_pass` ordered by (seed,
epoch), evened out with blank batches so that every worker takes the same steps (the
collectives need it); all epochs are one dataset (`passes.over_passes`).
"""

from typing import NamedTuple, Optional, Sequence

import tensorflow as tf

from rps_tfdata.pipeline import passes
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.passes import Batch
from rps_tfdata.pipeline.reading.prepare import Prepared, as_written, prepare, require_images
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation


class LabelledSplit(NamedTuple):
    """A split the trainer reads: its images, read once, and their labels.

    Attributes:
      prepared: the readable images (`reading.prepare`).
      labels: the class index of every image of the whole list the split came from, by
        id (`Prepared.ids`), readable or not.
      num_classes: length of the one-hot labels.
    """

    prepared: Prepared
    labels: Sequence[int]
    num_classes: int

    @property
    def readable_labels(self) -> list[int]:
        """The label of each readable image, in the split's order."""
        return [int(self.labels[i]) for i in self.prepared.ids]


def training_batches(
    split: LabelledSplit,
    *,
    seed: int,
    start_epoch: int = 0,
    end_epoch: int = 1,
    augmentation: Optional[IDGAugmentation] = None,
    batch_size: Optional[int] = None,
    batches_per_epoch: Optional[int] = None,
    skip_batches: int = 0,
) -> tf.data.Dataset:
    """The shuffled, augmented batches of epochs [start_epoch, end_epoch), one after
    another, prefetched across epoch boundaries.

    Each epoch's order and each image's augmentation are functions of (seed, epoch,
    image), so a resumed epoch is the same epoch.

    Args:
      split: the labelled split, read once.
      seed: the run's seed.
      start_epoch: the first epoch (a resumed run's).
      end_epoch: one past the last epoch.
      augmentation: the layer that augments, or None.
      batch_size: images per batch (one replica's share); default the options'.
      batches_per_epoch: even out each epoch with blank batches to this many, so that
        every worker of a distributed run takes the same number of steps.
      skip_batches: batches of `start_epoch` already trained (a run resumed inside it);
        their images are never read.

    Returns:
      (images, labels, seeds) batches: images uint8 (float32 on the 0..255 scale when
      augmented), labels one-hot (all zero for a blank row), seeds per image.

    Raises:
      DatasetLayoutError: the split holds no readable image.
    """
    prepared = split.prepared
    require_images(prepared, "the training subset")
    batch_size = batch_size or prepared.options.batch_size
    step = _labelled(split)
    if batches_per_epoch is not None:  # blank batches, the step's own, to even out with
        padding = passes.blank(batch_size, prepared.pixel_shape, passes.pixel_dtype(augmentation))
        blanks = tf.data.Dataset.from_tensors(step(padding)).repeat()

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        skipped = tf.where(epoch == start_epoch, tf.constant(skip_batches, tf.int64), 0)
        dataset = passes.one_pass(
            prepared,
            epoch,
            step,
            seed=seed,
            batch_size=batch_size,
            augmentation=augmentation,
            pad=True,
            skip_images=skipped * batch_size,
        )
        if batches_per_epoch is not None:  # even out: the collectives need equal steps
            dataset = dataset.concatenate(blanks).take(batches_per_epoch - skipped)
        return dataset

    epochs = tf.data.Dataset.range(start_epoch, end_epoch)
    return passes.over_passes(epochs, one_epoch, prepared.options)


def epoch_batches(
    split: LabelledSplit,
    epoch: int,
    *,
    seed: int,
    augmentation: Optional[IDGAugmentation] = None,
) -> tf.data.Dataset:
    """One shuffled epoch on its own, from a splittable source (the epoch's images
    0..n-1), as the tf.data service's dynamic sharding needs; pixels are read from files
    (or the disk cache) by whoever runs it.

    Raises:
      ValueError: the split's pixels are held in this process's memory.
    """
    if split.prepared.images is not None:
        raise ValueError("a pipeline for the tf.data service cannot hold the memory cache")
    step = _labelled(split)
    return _one_epoch(
        split.prepared, step, epoch, seed=seed, shuffle=True, augmentation=augmentation
    )


def evaluation_batches(
    split: LabelledSplit,
    *,
    augmentation: Optional[IDGAugmentation] = None,
    seed: int = 0,
    epoch: int = 0,
) -> tf.data.Dataset:
    """The split's (images, labels) batches in order, the last padded with blank rows.

    Args:
      split: the labelled split, read once.
      augmentation: augments the batches (the seed's validation) when given.
      seed: the run's seed (for the augmentation).
      epoch: the epoch whose augmentation to draw.

    Returns:
      (images, labels) batches: images uint8, or float32 on the 0..255 scale when
      augmented; labels one-hot, all zero for a blank row.
    """
    step = _labelled(split)
    dataset = _one_epoch(
        split.prepared, step, epoch, seed=seed, shuffle=False, augmentation=augmentation
    )
    return dataset.map(as_written(lambda images, labels, seeds: (images, labels)))


def image_batches(prepared: Prepared) -> tf.data.Dataset:
    """Images with no label (files to classify) in order: (images, present) batches, the
    last padded with blank rows (`present` False), uint8."""
    step = as_written(lambda batch: (batch.pixels, batch.readable))
    return _one_epoch(prepared, step, 0, seed=0, shuffle=False, augmentation=None)


def read(
    paths: Sequence[str],
    labels: Sequence[int],
    num_classes: int,
    options: PipelineOptions,
    **prepare_options,
) -> LabelledSplit:
    """A split's files read once (`prepare.prepare`, with `prepare_options`) with their
    labels: `labels[i]` is the label of the image of id i (by default the i-th path)."""
    return LabelledSplit(prepare(paths, options, **prepare_options), labels, num_classes)


def batch_count(split: LabelledSplit) -> int:
    """Batches in one epoch at the options' batch size (the last one may be partial)."""
    prepared = split.prepared
    return passes.batches_per_pass(prepared.count, prepared.options.batch_size)


def _one_epoch(
    prepared: Prepared,
    step: passes.Step,
    epoch: int,
    *,
    seed: int,
    shuffle: bool,
    augmentation: Optional[IDGAugmentation],
) -> tf.data.Dataset:
    """One epoch's batches through `step`, padded, at the options' batch size, prefetched."""
    require_images(prepared, "the split")
    dataset = passes.one_pass(
        prepared,
        tf.constant(epoch, tf.int64),
        step,
        seed=seed,
        batch_size=prepared.options.batch_size,
        shuffle=shuffle,
        augmentation=augmentation,
        pad=True,
    )
    return passes.prefetched(dataset, prepared.options)


def _labelled(split: LabelledSplit):
    """The trainer's per-batch step: (images, one-hot labels, seeds) of a padded batch;
    a row with no readable image has no label."""
    labels = tf.one_hot(tf.constant(split.labels, tf.int32), split.num_classes)

    @as_written
    def step(batch: Batch):
        # A padding row's id is NO_IMAGE: any label will do, the mask zeroes it.
        known = tf.gather(labels, tf.maximum(batch.ids, 0))
        return batch.pixels, known * tf.cast(batch.readable, tf.float32)[:, None], batch.seeds

    return step
