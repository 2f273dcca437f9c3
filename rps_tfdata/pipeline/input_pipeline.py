"""The input pipeline, top to bottom: how a split's image files become the batches a step
trains on. Two calls, each a chain of steps in the order written here:

`prepare`, once per split, before training (the first read):
  screen headers    every file's header in Python (`headers.screen`): what can never
                    decode (empty, truncated, TIFF, a decompression bomb) is named, and
                    never handed to a decoder
  decode, resize    in parallel, as IDG reads (`decode.load_image`); a file the decoder
                    rejects is named
  cache             the readable files' uint8 pixels: one tensor in memory, one raw file
                    per image on disk (`disk_cache`), or nothing (every epoch decodes
                    again; then the decode can wait for the epochs, `decode=False`)
`training_batches`, the epochs, as ONE tf.data pipeline:
  order             each epoch a full permutation of (seed, epoch) (`index_shuffle`): no
                    shuffle buffer to fill, and a resumed epoch is the same epoch
  pixels            from the cache, or decoded again, a failure caught per image (its
                    place kept as a blank with no label)
  batch             IDG's batch size, the last batch partial ...
  pad               ... filled with blank rows: one static shape, one trace, one XLA
                    compilation; a blank has no label and weighs nothing
  seeds             per image, (seed, epoch, image id): an image's augmentation does not
                    depend on its batch, replica or worker
  augment           on the host when the plan puts it here (float32 out: the bilinear
                    warp makes fractions); else uint8 crosses and the step augments
  even out          blank batches, so that every worker takes the same steps
  prefetch          across epoch boundaries (all epochs are one `flat_map`)
"""

import os
import sys
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from rps_tfdata.infra import fs
from rps_tfdata.pipeline.reading import disk_cache, file_facts, headers
from rps_tfdata.pipeline.reading.decode import COLOR_MODES, load_image
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation
from rps_tfdata.trainer.config import AUTOTUNE

CACHE_MODES = ("memory", "disk", "none")
# The pipeline's functions hold no Python control flow on tensors: tf.data traces them as
# written, without autograph's conversion (which costs start-up time, never speed).
_as_written = tf.autograph.experimental.do_not_convert
# The seeds of a row that holds no image (a batch's padding): every real image's are >= 0.
NO_IMAGE = -1


class PipelineOptions(NamedTuple):
    """How images are read and fed; see the flags of `rps_tfdata.train` for meanings."""

    image_size: tuple[int, int] = (150, 150)
    batch_size: int = 32
    resize_method: str = "pil_nearest"
    color_mode: str = "rgb"  # IDG's: rgb, grayscale or rgba
    keep_aspect_ratio: bool = False  # crop the centre to the target's aspect ratio first
    cache: str = "memory"
    cache_path: str = ""  # folder of the cache="disk" folders
    deterministic: bool = True
    parallel_calls: int = AUTOTUNE  # of the decode and augment maps
    threadpool_size: int = 0  # 0: TensorFlow's shared pool; N: a private pool of N threads
    prefetch: int = AUTOTUNE  # batches

    @property
    def channels(self) -> int:
        return COLOR_MODES[self.color_mode]

    @property
    def pixel_shape(self) -> tuple[int, int, int]:
        """One decoded image's shape."""
        return (*self.image_size, self.channels)


def _load(path: tf.Tensor, options: PipelineOptions) -> tf.Tensor:
    """One file read as `options` say: decoded, resized, uint8."""
    return load_image(
        path,
        options.image_size,
        options.resize_method,
        color_mode=options.color_mode,
        keep_aspect_ratio=options.keep_aspect_ratio,
    )


class Prepared(NamedTuple):
    """One split after `prepare`: its readable files and where their pixels are.

    Attributes:
      paths, labels: the readable files, in the split's order, and their labels.
      ids: each readable file's position in the whole split's listing: its identity for
        augmentation, the same whichever worker or shard reads it.
      bad: the files left out, with the reason.
      num_classes: length of the one-hot labels.
      options: how the pixels were read.
      images: the (n, h, w, 3) uint8 pixels with cache="memory", else None.
      cache_folder: the raw files' folder with cache="disk", else None.
      decoded: every file in `paths` was decoded once (False: headers screened only).
    """

    paths: list[str]
    labels: list[int]
    ids: list[int]
    bad: list[headers.BadImage]
    num_classes: int
    options: PipelineOptions
    images: Optional[tf.Tensor] = None
    cache_folder: Optional[str] = None
    decoded: bool = True

    @property
    def count(self) -> int:
        """How many images the split holds (files, or rows of `images`)."""
        return len(self.ids)


def with_options(dataset: tf.data.Dataset, options: PipelineOptions) -> tf.data.Dataset:
    tf_options = tf.data.Options()
    # Determinism makes runs repeatable and measured free here (BUILD.md: no change in
    # pipeline throughput); --nodeterministic lets parallel maps return out of order.
    tf_options.deterministic = options.deterministic
    tf_options.autotune.enabled = True
    if options.threadpool_size:
        tf_options.threading.private_threadpool_size = options.threadpool_size
    return dataset.with_options(tf_options)


# ---- prepare: the first read -------------------------------------------------------------


def prepare(
    paths: Sequence[str],
    labels: Sequence[int],
    num_classes: int,
    options: PipelineOptions,
    *,
    name: str = "data",
    ids: Optional[Sequence[int]] = None,
    decode: bool = True,
    facts: Optional[Sequence[file_facts.Facts]] = None,
) -> Prepared:
    """Reads a split once: every file screened, the readable ones' pixels kept where
    `options.cache` says, each unreadable file named with its reason.

    Reading once is what makes every later epoch fast; naming a bad file here, once,
    keeps it from failing an epoch in the middle.

    Args:
      paths: the split's image files (paths or URLs), in the split's order.
      labels: each file's class index.
      num_classes: how many classes the labels index.
      options: how to read (size, resize, cache, parallelism).
      name: tells the splits' disk caches apart (one folder per split).
      ids: the files' positions in the whole split when `paths` is one worker's shard
        of it (default: 0..n-1).
      decode: with cache "none", decode every file now to check it (False: headers
        only; a decode failure is then met, and skipped, by the epoch that reads it).
      facts: the files' stats and header screen when the caller has them
        (`file_facts.gather`), else read here.

    Returns:
      The readable files, their labels and ids, the unreadable ones with reasons, and
      the cache that holds their pixels.
    """
    ids = list(range(len(paths))) if ids is None else list(ids)
    if facts is None:
        facts = fs.for_each(file_facts.read_one, paths)
    # Headers first, in Python: what can never decode is named, and never decoded.
    candidates, bad = headers.screen(paths, [f.problem for f in facts])
    decoded = decode or options.cache != "none"
    images = folder = None
    if options.cache == "disk":  # one raw file per image, in a folder named by the data
        key = file_facts.fingerprint(paths, facts, name, *_reading(options))
        fill = lambda store: bad + _decode_candidates(paths, candidates, options, store)  # noqa: E731
        folder, bad = disk_cache.open_or_fill(options.cache_path, f"{name}-{key}", fill)
    elif options.cache == "memory":  # one uint8 tensor
        images, corrupt = _memory_cache(paths, candidates, options)
        bad = bad + corrupt
    elif decoded:  # checked by a real decode, then dropped: the epochs decode again
        bad = bad + _decode_candidates(paths, candidates, options, lambda first_id, batch: None)
    failed = {b.path for b in bad}
    good = [i for i, p in enumerate(paths) if p not in failed]
    for item in bad:
        logging.warning("unreadable image %s: %s", fs.printable(item.path), item.reason)
    return Prepared(
        paths=[paths[i] for i in good],
        labels=[int(labels[i]) for i in good],
        ids=[ids[i] for i in good],
        bad=sorted(bad),
        num_classes=num_classes,
        options=options,
        images=images,
        cache_folder=folder,
        decoded=decoded,
    )


@tf.autograph.experimental.do_not_convert  # plain Python, also when a dataset builds it
def path_tensor(paths: Sequence[str]) -> tf.Tensor:
    """File names as a string tensor of their bytes: a name that is not UTF-8 (Python
    holds it with surrogate escapes) reaches the file system as it was listed."""
    return tf.constant([os.fsencode(p) for p in paths], tf.string, shape=[len(paths)])


def _decoded(paths: Sequence[str], options: PipelineOptions) -> tf.data.Dataset:
    """(position, uint8 image) for every file that decodes; the others are dropped.

    `ignore_errors` is what lets one pass decode in parallel and still tell which files
    failed: their positions are the ones missing from the output.
    """
    dataset = tf.data.Dataset.from_tensor_slices(path_tensor(paths)).enumerate()
    dataset = dataset.map(
        _as_written(lambda i, path: (i, _load(path, options))),
        num_parallel_calls=options.parallel_calls,
        deterministic=True,
    )
    return with_options(dataset.ignore_errors().prefetch(AUTOTUNE), options)


def _decode_candidates(
    paths: Sequence[str],
    candidates: Sequence[int],
    options: PipelineOptions,
    store: Callable[[int, tf.Tensor], None],
) -> list[headers.BadImage]:
    """Decodes the files at positions `candidates` (those the screen passed), handing
    `store(first_id, images)` each batch of them (an image's id is its position among
    the readable files); returns the files the decoder rejects. Batches keep Python's
    share of the work small and memory bounded."""
    decoded = set()
    first_id = 0
    # Output order is input order (deterministic), so ids count up as files decode.
    for positions, images in _decoded([paths[i] for i in candidates], options).batch(64):
        decoded.update(candidates[p] for p in positions.numpy())
        store(first_id, images)
        first_id += len(positions)
    corrupt = [i for i in candidates if i not in decoded]
    return [headers.BadImage(paths[i], headers.CORRUPT) for i in corrupt]


def _reading(options: PipelineOptions) -> list:
    """What decides a file's cached pixels, besides the file: the disk cache's key. The
    settings the trainer never changes join the key only when set, so the folder of a
    trainer's cache keeps its name."""
    reading = [list(options.image_size), options.resize_method]
    if (options.color_mode, options.keep_aspect_ratio) != ("rgb", False):
        reading += [options.color_mode, options.keep_aspect_ratio]
    return reading


def memory_cache_peak(counts: Sequence[int], pixel_shape: Sequence[int]) -> int:
    """The bytes the memory cache of splits of `counts` images of `pixel_shape` takes at
    its peak, as they are built one after another: what they hold, plus the copy of the
    largest's batches that `tf.concat` copies into it."""
    per_image = int(np.prod(pixel_shape))
    return per_image * (sum(counts) + max(counts, default=0))


def _memory_cache(paths: Sequence[str], candidates: Sequence[int], options: PipelineOptions):
    """(one uint8 tensor of the readable files' pixels, the files the decoder rejects)."""
    batches: list[tf.Tensor] = []
    corrupt = _decode_candidates(paths, candidates, options, lambda _, b: batches.append(b))
    # One copy, batches to the cache (through NumPy it was two).
    if not batches:
        return tf.zeros((0, *options.pixel_shape), tf.uint8), corrupt
    return tf.concat(batches, axis=0), corrupt


def undecodable(prepared: Prepared) -> list[headers.BadImage]:
    """The files of a split prepared without its decode that the decoder rejects: one
    parallel decode pass, run only to name the files an epoch could not decode."""
    kept = {int(i) for i, _ in _decoded(prepared.paths, prepared.options)}
    missing = [path for i, path in enumerate(prepared.paths) if i not in kept]
    return [headers.BadImage(path, headers.CORRUPT) for path in missing]


def decoded_now(prepared: Prepared) -> Prepared:
    """A split prepared without its decode, decoded once now: the files the decoder
    rejects leave it, named, as a decode before training would have left them."""
    if prepared.decoded:
        return prepared
    corrupt = undecodable(prepared)
    for item in corrupt:
        logging.warning("unreadable image %s: %s", fs.printable(item.path), item.reason)
    failed = {item.path for item in corrupt}
    good = [i for i, p in enumerate(prepared.paths) if p not in failed]
    return prepared._replace(
        paths=[prepared.paths[i] for i in good],
        labels=[prepared.labels[i] for i in good],
        ids=[prepared.ids[i] for i in good],
        bad=sorted(prepared.bad + corrupt),
        decoded=True,
    )


# ---- the epochs ---------------------------------------------------------------------------


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
    """The shuffled, augmented batches of epochs [start_epoch, end_epoch), one after
    another, prefetched across epoch boundaries.

    Each epoch's order and each image's augmentation are functions of (seed, epoch,
    image), so a resumed epoch is the same epoch.

    Args:
      prepared: the split, read once (`prepare`).
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
      ValueError: the split holds no readable image.
    """
    _require_images(prepared)
    batch_size = batch_size or prepared.options.batch_size

    @_as_written
    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
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
        if batches_per_epoch is not None:  # even out: the collectives need equal steps
            blanks = _blank_batches(prepared, pixel_dtype(augmentation), batch_size)
            dataset = dataset.concatenate(blanks).take(batches_per_epoch - skipped)
        return dataset

    dataset = tf.data.Dataset.range(start_epoch, end_epoch).flat_map(one_epoch)
    return with_options(dataset.prefetch(prepared.options.prefetch), prepared.options)


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
    """One epoch's chain (the module doc's order): (images, one-hot labels, per-image
    seeds) batches; the epoch's first `skip_images` places (a resumed epoch's finished
    steps) are left out before any pixel is read."""
    labels = tf.one_hot(tf.constant(prepared.labels, tf.int32), prepared.num_classes)
    ids = tf.constant(prepared.ids, tf.int64)

    @_as_written
    def labelled(i: tf.Tensor, pixels: tf.Tensor, readable: tf.Tensor):
        # An unreadable image keeps its place with no label: the step does not learn from it.
        label = tf.gather(labels, i) * tf.cast(readable, tf.float32)
        return pixels, label, tf.gather(ids, i)

    places = ordered_pixels(prepared, epoch, seed=seed, shuffle=shuffle, skip_images=skip_images)
    dataset = places.map(labelled)
    # IDG yields a partial last batch; keep its images, so every image is seen every epoch.
    dataset = dataset.batch(batch_size, drop_remainder=False)

    @_as_written
    def finish(images: tf.Tensor, labels: tf.Tensor, batch_ids: tf.Tensor):
        images, labels, batch_ids = _padded(images, labels, batch_ids, batch_size)
        seeds = tf.where(
            batch_ids[:, None] >= 0, augmentation_seeds(seed, epoch, batch_ids), NO_IMAGE
        )
        if augmentation is not None:
            images = augmentation(tf.cast(images, tf.float32), training=True, seed=seeds)
        return images, labels, seeds

    return dataset.map(finish, num_parallel_calls=prepared.options.parallel_calls)


def ordered_pixels(
    prepared: Prepared, epoch: tf.Tensor, *, seed: int, shuffle: bool, skip_images=0
) -> tf.data.Dataset:
    """The order and the pixels of one epoch (or pass): (position, uint8 pixels, readable)
    for each place, a full permutation of (seed, epoch) when `shuffle`, else the split's
    order; the first `skip_images` places are left out before any pixel is read."""
    count = prepared.count
    first = tf.minimum(tf.cast(skip_images, tf.int64), count)
    order_seed = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])

    def position_of(places: tf.Tensor) -> tf.Tensor:  # order
        if not shuffle:
            return places
        return tf.random.experimental.index_shuffle(places, order_seed, count - 1)

    return _read_places(prepared, first, position_of)


def _read_places(
    prepared: Prepared, first: tf.Tensor, position_of: Callable[[tf.Tensor], tf.Tensor]
) -> tf.data.Dataset:
    """(position, uint8 pixels, readable) for the epoch's places `first`..n-1, where
    `position_of(places)` maps places (a vector) to positions in `prepared.paths`; in
    order, read in parallel. Only a split prepared without its decode can hold a file
    that fails to decode: its place gets a blank, `readable` False, named on stderr."""
    options, count = prepared.options, prepared.count
    places = tf.data.Dataset.range(first, count)
    if not prepared.decoded:
        return _read_catching(prepared, places, position_of)
    pixels_of = _pixel_reader(prepared)

    @_as_written
    def read(place: tf.Tensor):
        position = position_of(place[None])[0]
        return position, pixels_of(position), tf.constant(True)

    return places.map(read, num_parallel_calls=options.parallel_calls)


def _pixel_reader(prepared: Prepared) -> Callable[[tf.Tensor], tf.Tensor]:
    """A graph function: image id -> uint8 (h, w, 3) pixels, from wherever they are kept."""
    options = prepared.options
    if prepared.images is not None:
        images = prepared.images
        return lambda i: tf.gather(images, i)
    if prepared.cache_folder is not None:
        return disk_cache.reader(prepared.cache_folder, len(prepared.paths), options.pixel_shape)
    paths = path_tensor(prepared.paths)
    return lambda i: _load(tf.gather(paths, i), options)


_LEFT_OUT = f" ({headers.CORRUPT}): left out of its step"


def _read_catching(prepared: Prepared, places, position_of) -> tf.data.Dataset:
    """`_read_places`' failure catching, one image at a time: a dataset of the decoded
    image, or of none when the decoder fails, then the blank; the first of the two is the
    place's element (the blank is built only when needed). Each place stands alone, so
    the tf.data service may hand its workers any places. 0.60-0.93 of the plain parallel
    decode's rate on 2 cores (BUILD.md)."""
    options = prepared.options
    paths = path_tensor(prepared.paths)
    blank = tf.zeros(options.pixel_shape, tf.uint8)

    @_as_written
    def read(position: tf.Tensor):
        path = tf.gather(paths, position)
        return position, _load(path, options), True

    @_as_written
    def left_out(position: tf.Tensor):
        line = tf.strings.join(
            ["rps_tfdata: unreadable image ", tf.gather(paths, position), _LEFT_OUT]
        )
        tf.print(line, output_stream=sys.stderr)
        return position, blank, tf.constant(False)

    @_as_written
    def read_or_blank(place: tf.Tensor) -> tf.data.Dataset:
        one = tf.data.Dataset.from_tensors(position_of(place[None])[0])
        return one.map(read).ignore_errors().concatenate(one.map(left_out)).take(1)

    return places.interleave(
        read_or_blank,
        cycle_length=options.parallel_calls if options.parallel_calls > 0 else None,
        num_parallel_calls=options.parallel_calls,
    )


def augmentation_seeds(seed: int, epoch: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """(batch, 2) augmentation seeds: a function of (seed, epoch, image id) alone."""
    epoch = tf.cast(epoch, tf.int64)
    low = epoch * (1 << 32) + tf.cast(ids, tf.int64)
    return tf.stack([tf.fill(tf.shape(low), tf.constant(seed, tf.int64)), low], axis=1)


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


def _blank_batches(prepared: Prepared, dtype: tf.DType, batch_size: int) -> tf.data.Dataset:
    """Batches of blanks only, which even out a worker's epoch to the steps every worker
    takes."""
    return tf.data.Dataset.from_tensors(
        (
            tf.zeros((batch_size, *prepared.options.pixel_shape), dtype),
            tf.zeros((batch_size, prepared.num_classes), tf.float32),
            tf.fill((batch_size, 2), tf.constant(NO_IMAGE, tf.int64)),
        )
    ).repeat()


def pixel_dtype(augmentation: Optional[IDGAugmentation]) -> tf.DType:
    """The dtype of the batches' images: uint8, or float32 when the pipeline augments."""
    return tf.uint8 if augmentation is None else tf.float32


def epoch_batches(
    prepared: Prepared, epoch: int, *, seed: int, augmentation: Optional[IDGAugmentation] = None
) -> tf.data.Dataset:
    """One shuffled epoch on its own, from a splittable source (the places 0..n-1), as
    the tf.data service's dynamic sharding needs; pixels are read from files (or the disk
    cache) by whoever runs it."""
    if prepared.images is not None:
        raise ValueError("a pipeline for the tf.data service cannot hold the memory cache")
    return _one_epoch(prepared, epoch, seed=seed, shuffle=True, augmentation=augmentation)


def evaluation_batches(
    prepared: Prepared,
    *,
    augmentation: Optional[IDGAugmentation] = None,
    seed: int = 0,
    epoch: int = 0,
) -> tf.data.Dataset:
    """The split's (images, labels) batches in order, the last padded with blank rows.

    Args:
      prepared: the split, read once (`prepare`).
      augmentation: augments the batches (the seed's validation) when given.
      seed: the run's seed (for the augmentation).
      epoch: the epoch whose augmentation to draw.

    Returns:
      (images, labels) batches: images uint8, or float32 on the 0..255 scale when
      augmented; labels one-hot, all zero for a blank row.
    """
    dataset = _one_epoch(prepared, epoch, seed=seed, shuffle=False, augmentation=augmentation)
    return dataset.map(_as_written(lambda images, labels, seeds: (images, labels)))


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


def _require_images(prepared: Prepared) -> None:
    if not prepared.count:
        raise ValueError("the subset holds no readable image file")


def steps_per_epoch(prepared: Prepared) -> int:
    """Batches in one epoch (the last one may be partial)."""
    return -(-len(prepared.paths) // prepared.options.batch_size)
