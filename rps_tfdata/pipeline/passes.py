"""The pass builder: a split read once (`Prepared`) becomes batches, pass after pass.

One pass, in the order the steps are built:
  order     a full permutation of (seed, pass) (`index_shuffle`), or the split's order:
            no shuffle buffer to fill, and a pass rebuilt later (a resumed epoch) is the
            same pass
  pixels    from the cache, or decoded again; with a split prepared without its decode,
            a failure is caught per image (its place kept as a blank, `readable` False)
  batch     the last batch partial, as IDG's ...
  pad       ... or, when asked, filled with blank rows: one static shape, one trace, one
            XLA compilation for whoever consumes it
  seeds     per image, (seed, pass, id): an image's augmentation does not depend on its
            batch, its replica or its worker
  augment   one fused warp per batch (`IDGAugmentation`), float32 out on 0..255; a
            partial batch is augmented padded to a whole one (one XLA compilation)
  step      the face's own per-batch step (`Batch` in, its element out): the trainer's
            labels, IDG's standardisation and targets
Passes follow one another in one dataset (`over_passes`), so prefetching crosses their
boundaries.

Three numberings meet here: a pass visits its images in turn (k = 0..n-1); the k-th image
of a pass is the prepared split's row `order(k)`; a row's id (`Prepared.ids`) is the
image's place in the caller's whole list, which seeds its augmentation.
"""

import sys
from typing import Any, Callable, NamedTuple, Optional

import tensorflow as tf

from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import headers
from rps_tfdata.pipeline.reading.prepare import (
    Prepared,
    as_written,
    load,
    path_tensor,
    pixels_of,
    with_options,
)
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation

# The row, id and seeds of a batch's padding, which holds no image: a real image's are >= 0.
NO_IMAGE = -1


class Batch(NamedTuple):
    """One batch of a pass, as a face's step receives it.

    Attributes:
      pass_number: the pass (int64 scalar), which ordered it and seeded its augmentation.
      rows: each image's row in the `Prepared` (int64); `NO_IMAGE` for a padding row.
      ids: each image's id (`Prepared.ids`): the key to the caller's rows of labels or
        targets; `NO_IMAGE` for a padding row.
      pixels: the images, of `pixel_dtype`; zeros for a padding row.
      readable: False for a padding row, and for an image whose file failed to decode
        in this pass, or in the pass that filled the cache (its pixels are a blank).
      seeds: (n, 2) int64 augmentation seeds, one per image; `NO_IMAGE` for padding.
    """

    pass_number: tf.Tensor
    rows: tf.Tensor
    ids: tf.Tensor
    pixels: tf.Tensor
    readable: tf.Tensor
    seeds: tf.Tensor


Step = Callable[[Batch], Any]


def augmentation_seeds(seed: int, pass_number: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """(batch, 2) augmentation seeds: a function of (seed, pass, image id) alone."""
    pass_number = tf.cast(pass_number, tf.int64)
    low = pass_number * (1 << 32) + tf.cast(ids, tf.int64)
    return tf.stack([tf.fill(tf.shape(low), tf.constant(seed, tf.int64)), low], axis=1)


def batches_per_pass(count: int, batch_size: int) -> int:
    """Batches in one pass over `count` images (the last one may be partial)."""
    return -(-count // batch_size)


def pixel_dtype(augmentation: Optional[IDGAugmentation], read: tf.DType = tf.uint8) -> tf.DType:
    """The dtype of a batch's pixels: as read (uint8 from files; the caller's for
    `from_pixels`), or float32 on 0..255 when augmented (the warp makes fractions)."""
    return read if augmentation is None else tf.float32


def blank(batch_size: int, pixel_shape: tuple[int, ...], dtype: tf.DType) -> Batch:
    """A batch of padding only (no image), of one pass's shapes."""
    no_image = tf.fill([batch_size], tf.constant(NO_IMAGE, tf.int64))
    return Batch(
        pass_number=tf.constant(0, tf.int64),
        rows=no_image,
        ids=no_image,
        pixels=tf.zeros((batch_size, *pixel_shape), dtype),
        readable=tf.zeros([batch_size], tf.bool),
        seeds=tf.fill((batch_size, 2), tf.constant(NO_IMAGE, tf.int64)),
    )


def one_pass(
    prepared: Prepared,
    pass_number: tf.Tensor,
    step: Step,
    *,
    seed: int,
    batch_size: int,
    shuffle: bool = True,
    augmentation: Optional[IDGAugmentation] = None,
    pad: bool = False,
    skip_images: Any = 0,
    stop_images: Any = None,
) -> tf.data.Dataset:
    """The batches of one pass over `prepared`, each handed to `step` (the module doc's
    order).

    Args:
      prepared: the split, read once.
      pass_number: which pass (an int64 scalar tensor, or an int).
      step: the face's per-batch step: a graph function of a `Batch`.
      seed: orders the pass (with `shuffle`) and seeds its augmentation.
      batch_size: images per batch.
      shuffle: a permutation of (seed, pass_number); else the split's order.
      augmentation: augments each batch, with one seed per image.
      pad: fill the last batch to `batch_size` with blank rows (no image, `readable`
        False, seeds `NO_IMAGE`).
      skip_images: the pass's first images already consumed (a resumed epoch's
        finished steps), left out before any pixel is read.
      stop_images: the pass's image to stop before (None: its end): a few of its
        batches, and no pixel read of the rest.

    Returns:
      A dataset of `step`'s elements, the source a splittable range of the pass's
      images (the tf.data service's dynamic sharding hands out parts of it).
    """
    ids = tf.constant(prepared.ids, tf.int64)
    pass_number = tf.cast(pass_number, tf.int64)

    @as_written
    def finish(rows: tf.Tensor, pixels: tf.Tensor, readable: tf.Tensor):
        batch_ids = tf.gather(ids, rows)
        seeds = augmentation_seeds(seed, pass_number, batch_ids)
        batch = Batch(pass_number, rows, batch_ids, pixels, readable, seeds)
        if pad:
            batch = _padded(batch, batch_size)
        if augmentation is not None:  # in TensorFlow, whatever Keras' backend
            batch = batch._replace(pixels=_augmented(augmentation, batch, batch_size))
        return step(batch)

    batches = _batches_in_order(
        prepared,
        pass_number,
        batch_size,
        seed=seed,
        shuffle=shuffle,
        span=(skip_images, stop_images),
    )
    return batches.map(finish, num_parallel_calls=prepared.options.parallel_calls)


def over_passes(
    pass_numbers: tf.data.Dataset,
    one: Callable[[tf.Tensor], tf.data.Dataset],
    options: PipelineOptions,
) -> tf.data.Dataset:
    """The passes `one(pass_number)` of each of `pass_numbers`, one after another as one
    dataset, prefetched across their boundaries."""
    return prefetched(pass_numbers.flat_map(as_written(one)), options)


def prefetched(dataset: tf.data.Dataset, options: PipelineOptions) -> tf.data.Dataset:
    """`dataset` prefetched, with the pipeline's tf.data options."""
    return with_options(dataset.prefetch(options.prefetch), options)


def _batches_in_order(
    prepared: Prepared,
    pass_number: tf.Tensor,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool,
    span: tuple,
) -> tf.data.Dataset:
    """(rows, pixels, readable) batches of the pass's images in its order, from its image
    `span[0]` to before `span[1]` (None: the end), the last batch partial as IDG's (every
    image is seen every pass). From the memory cache, one gather a batch (a map and a
    batch of single images cost tf.data's overhead per image and copy each twice); else
    read image by image in parallel, the order kept. A cache the passes fill gathers
    when it holds every image, else streams as a read would (`filling`)."""
    count = prepared.count
    order_seed = tf.stack([tf.constant(seed, tf.int64), pass_number])

    def rows_of(turns: tf.Tensor) -> tf.Tensor:  # the pass's k-th images -> their rows
        if not shuffle:
            return turns
        return tf.random.experimental.index_shuffle(turns, order_seed, count - 1)

    skip, stop = span
    last = count if stop is None else tf.minimum(tf.cast(stop, tf.int64), count)
    first = tf.minimum(tf.cast(skip, tf.int64), last)
    turns = tf.data.Dataset.range(first, last)
    if prepared.filling is not None:  # the cache filled as the passes read
        return prepared.filling.batches(first, last, rows_of, batch_size)
    if not prepared.decoded:
        return _read_catching(prepared, turns, rows_of).batch(batch_size)
    pixels_at = pixels_of(prepared)
    if prepared.images is not None:

        @as_written
        def gathered(batch_turns: tf.Tensor):
            rows = rows_of(batch_turns)
            return rows, pixels_at(rows), tf.fill(tf.shape(rows), True)

        return turns.batch(batch_size).map(gathered)

    @as_written
    def read(turn: tf.Tensor):
        row = rows_of(turn[None])[0]
        return row, pixels_at(row), tf.constant(True)

    images = turns.map(read, num_parallel_calls=prepared.options.parallel_calls)
    return images.batch(batch_size)


_LEFT_OUT = f" ({headers.CORRUPT}): left out of its step"


def _read_catching(prepared: Prepared, turns: tf.data.Dataset, rows_of) -> tf.data.Dataset:
    """`_batches_in_order`'s images for a split prepared without its decode, one image at a time: a
    dataset of the decoded image, or of none when the decoder fails, then the blank; the
    first of the two is the image's element (the blank is built only when needed). Each
    image stands alone, so the tf.data service may hand its workers any of them. 0.60-0.93
    of the plain parallel decode's rate on 2 cores (BUILD.md)."""
    options = prepared.options
    paths = path_tensor(prepared.paths)
    blank = tf.zeros(options.pixel_shape, tf.uint8)

    @as_written
    def read(row: tf.Tensor):
        return row, load(tf.gather(paths, row), options), True

    @as_written
    def left_out(row: tf.Tensor):
        line = tf.strings.join(["rps_tfdata: unreadable image ", tf.gather(paths, row), _LEFT_OUT])
        tf.print(line, output_stream=sys.stderr)
        return row, blank, tf.constant(False)

    @as_written
    def read_or_blank(turn: tf.Tensor) -> tf.data.Dataset:
        one = tf.data.Dataset.from_tensors(rows_of(turn[None])[0])
        return one.map(read).ignore_errors().concatenate(one.map(left_out)).take(1)

    return turns.interleave(
        read_or_blank,
        cycle_length=options.parallel_calls if options.parallel_calls > 0 else None,
        num_parallel_calls=options.parallel_calls,
    )


def readable_only(batch: Batch) -> Batch:
    """`batch` without its rows that hold no readable image (a pass met a file that
    cannot be decoded): a face with no per-row weight leaves them out. A batch with
    every row readable is passed on as it is (masking a float batch of 150 px costs
    milliseconds)."""
    keep = batch.readable

    def masked() -> Batch:
        return batch._replace(
            rows=tf.boolean_mask(batch.rows, keep),
            ids=tf.boolean_mask(batch.ids, keep),
            pixels=tf.boolean_mask(batch.pixels, keep),
            readable=tf.boolean_mask(batch.readable, keep),
            seeds=tf.boolean_mask(batch.seeds, keep),
        )

    return tf.cond(tf.reduce_all(keep), lambda: batch, masked)


def _augmented(augmentation: IDGAugmentation, batch: Batch, batch_size: int) -> tf.Tensor:
    """`batch`'s pixels augmented as a batch of `batch_size` rows, the missing ones
    blank: XLA compiles the augmentation once per shape (about 0.5 s on 2 cores), so a
    pass's partial last batch would compile it again. Each image's augmentation is its
    seed's alone, whatever its batch; a whole batch passes through without a copy."""
    if batch.pixels.shape[0] == batch_size:  # padded already (`pad`)
        return augmentation.augment_batch(batch.pixels, batch.seeds)
    count = tf.shape(batch.rows)[0]
    full = _padded(batch, batch_size)
    return augmentation.augment_batch(full.pixels, full.seeds)[:count]


def _padded(batch: Batch, batch_size: int) -> Batch:
    """`batch` filled to `batch_size` rows with blanks that hold no image (row, id and
    seeds `NO_IMAGE`, not readable): every batch then has one static shape."""
    missing = batch_size - tf.shape(batch.rows)[0]

    def padded(values: tf.Tensor, fill) -> tf.Tensor:
        widths = [[0, missing]] + [[0, 0]] * (values.shape.rank - 1)
        out = tf.pad(values, widths, constant_values=fill)
        out.set_shape([batch_size, *values.shape[1:]])
        return out

    return batch._replace(
        rows=padded(batch.rows, NO_IMAGE),
        ids=padded(batch.ids, NO_IMAGE),
        pixels=padded(batch.pixels, 0),
        readable=padded(batch.readable, False),
        seeds=padded(batch.seeds, NO_IMAGE),
    )
