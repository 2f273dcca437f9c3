"""Reading each split once: every file checked, the readable ones decoded and kept.

`prepare` reads a split once before training: every file is checked (`rps_tfdata.core.scan`
and a real decode), the unreadable ones are left out with their reason, and the decoded,
resized uint8 pixels of the rest are kept where `PipelineOptions.cache` says (with
cache="none" the decode can wait for the epochs: `prepare(decode=False)`, below):
  memory  one uint8 tensor (about 170 MB for 2,520 images at 150x150);
  disk    one raw file per image in a folder named by a fingerprint of the files (paths,
          sizes, mtimes), the image size, the resize method and the split: other data
          never reads it, a killed fill leaves no folder (staged, then renamed), and
          memory stays bounded by the batches in flight;
  none    nothing: every epoch decodes the files again.

A split of a million files under cache="none" need not be decoded twice before its
first step: `prepare(decode=False)` screens headers only, and `read_epoch` then
catches the decoder's failures as the epochs read: such an image becomes a blank with
no label (the train step counts and learns from labelled images only), named in one
log line by the process that decoded it (the trainer, or a tf.data service worker).
Its place in the epoch stays, so the order, the per-image seeds and a resumed epoch's
skipped positions are those of a run that never met it.

The epochs are built from a `Prepared` split by `rps_tfdata.core.epochs`.
"""

import json
import os
import sys
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from rps_tfdata.core import files, scan, storage
from rps_tfdata.core.images import load_image

CACHE_MODES = ("memory", "disk", "none")
AUTOTUNE = tf.data.AUTOTUNE
_BAD_LIST = "unreadable.json"


class PipelineOptions(NamedTuple):
    """How images are read and fed; see the flags of `rps_tfdata.train` for meanings."""

    image_size: tuple[int, int] = (150, 150)
    batch_size: int = 32
    resize_method: str = "pil_nearest"
    cache: str = "memory"
    cache_path: str = ""  # folder of the cache="disk" folders
    deterministic: bool = True
    parallel_calls: int = AUTOTUNE  # of the decode and augment maps
    threadpool_size: int = 0  # 0: TensorFlow's shared pool; N: a private pool of N threads
    prefetch: int = AUTOTUNE  # batches


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
    bad: list[scan.BadImage]
    num_classes: int
    options: PipelineOptions
    images: Optional[tf.Tensor] = None
    cache_folder: Optional[str] = None
    decoded: bool = True


def with_options(dataset: tf.data.Dataset, options: PipelineOptions) -> tf.data.Dataset:
    tf_options = tf.data.Options()
    # Determinism makes runs repeatable and measured free here (BUILD.md: no change in
    # pipeline throughput); --nodeterministic lets parallel maps return out of order.
    tf_options.deterministic = options.deterministic
    tf_options.autotune.enabled = True
    if options.threadpool_size:
        tf_options.threading.private_threadpool_size = options.threadpool_size
    return dataset.with_options(tf_options)


def _decoded(paths: Sequence[str], options: PipelineOptions) -> tf.data.Dataset:
    """(position, uint8 image) for every file that decodes; the others are dropped.

    `ignore_errors` is what lets one pass decode in parallel and still tell which files
    failed: their positions are the ones missing from the output.
    """
    dataset = tf.data.Dataset.from_tensor_slices(path_tensor(paths)).enumerate()
    dataset = dataset.map(
        lambda i, path: (i, load_image(path, options.image_size, options.resize_method)),
        num_parallel_calls=options.parallel_calls,
        deterministic=True,
    )
    return with_options(dataset.ignore_errors().prefetch(AUTOTUNE), options)


@tf.autograph.experimental.do_not_convert  # plain Python, also when a dataset builds it
def path_tensor(paths: Sequence[str]) -> tf.Tensor:
    """File names as a string tensor of their bytes: a name that is not UTF-8 (Python
    holds it with surrogate escapes) reaches the file system as it was listed."""
    return tf.constant([os.fsencode(p) for p in paths], tf.string, shape=[len(paths)])


def undecodable(prepared: Prepared) -> list[scan.BadImage]:
    """The files of a split prepared without its decode that the decoder rejects: one
    parallel decode pass, run only to name the files an epoch could not decode."""
    kept = {int(i) for i, _ in _decoded(prepared.paths, prepared.options)}
    missing = [path for i, path in enumerate(prepared.paths) if i not in kept]
    return [scan.BadImage(path, scan.CORRUPT) for path in missing]


def _raw_path(folder: str, position: int) -> str:
    return os.path.join(folder, f"{position:07d}.u8")


def _read_all(
    paths: Sequence[str], options: PipelineOptions, store: Callable[[int, tf.Tensor], None]
) -> list[scan.BadImage]:
    """Decodes every readable file, handing `store(first_id, images)` each batch of them,
    where an image's id is its position among the readable files; returns the unreadable
    files. Batches keep Python's share of the work small and memory bounded."""
    candidates, bad = scan.screen(paths)
    decoded = set()
    first_id = 0
    # Output order is input order (deterministic), so ids count up as files decode.
    for positions, images in _decoded([paths[i] for i in candidates], options).batch(64):
        decoded.update(candidates[p] for p in positions.numpy())
        store(first_id, images)
        first_id += len(positions)
    return bad + [scan.BadImage(paths[i], scan.CORRUPT) for i in candidates if i not in decoded]


def _fill_disk_cache(staging: str, paths: Sequence[str], options: PipelineOptions) -> None:
    """One raw file of uint8 pixels per image id, and the list of unreadable files."""

    def store(first_id: int, images: tf.Tensor) -> None:
        for offset, pixels in enumerate(images.numpy()):
            with storage.open_file(_raw_path(staging, first_id + offset), "wb") as f:
                f.write(pixels.tobytes())

    bad = _read_all(paths, options, store)
    files.write_json(os.path.join(staging, _BAD_LIST), scan.as_records(bad))


def _disk_cache(paths: Sequence[str], options: PipelineOptions, name: str) -> tuple[str, list]:
    """The split's fingerprinted raw-pixel folder (built once) and its unreadable files."""
    storage.makedirs(options.cache_path)
    key = files.fingerprint(paths, name, list(options.image_size), options.resize_method)
    folder = os.path.join(options.cache_path, f"{name}-{key}")
    for stale in storage.listdir(options.cache_path):  # other data or settings: never again
        path = os.path.join(options.cache_path, stale)
        if stale.startswith(f"{name}-") and path != folder and files.is_complete(path):
            storage.rmtree(path)
    files.build_folder(folder, lambda staging: _fill_disk_cache(staging, paths, options))
    with storage.open_file(os.path.join(folder, _BAD_LIST)) as f:
        bad = [scan.BadImage(**record) for record in json.load(f)]
    return folder, bad


def prepare(
    paths: Sequence[str],
    labels: Sequence[int],
    num_classes: int,
    options: PipelineOptions,
    *,
    name: str = "data",
    ids: Optional[Sequence[int]] = None,
    decode: bool = True,
) -> Prepared:
    """Reads a split once: checks every file, keeps the readable ones' pixels (see the
    module doc for where), and names each unreadable file with its reason.

    `name` tells the splits' disk caches apart (one folder per split); `ids` are the
    files' positions in the whole split when `paths` is one worker's shard of it;
    `decode=False` with cache="none" screens headers only (decode failures are then
    found by `read_epoch`).
    """
    ids = list(range(len(paths))) if ids is None else list(ids)
    folder = images = None
    decoded = decode or options.cache != "none"
    if options.cache == "disk":
        folder, bad = _disk_cache(paths, options, name)
    elif options.cache == "memory":
        pixels = np.empty((len(paths), *options.image_size, 3), np.uint8)

        def store(first_id: int, batch: tf.Tensor) -> None:
            pixels[first_id : first_id + len(batch)] = batch.numpy()

        bad = _read_all(paths, options, store)
        images = tf.constant(pixels[: len(paths) - len(bad)])
        del pixels  # the tensor is the copy kept
    elif decoded:
        bad = _read_all(paths, options, lambda first_id, images: None)
    else:
        bad = scan.screen(paths)[1]
    failed = {b.path for b in bad}
    good = [i for i, p in enumerate(paths) if p not in failed]
    for item in bad:
        logging.warning("unreadable image %s: %s", files.readable(item.path), item.reason)
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


def _pixel_reader(prepared: Prepared):
    """A graph function: image id -> uint8 (h, w, 3) pixels, from wherever they are kept."""
    height, width = prepared.options.image_size
    if prepared.images is not None:
        images = prepared.images
        return lambda i: tf.gather(images, i)
    if prepared.cache_folder is not None:
        raw = tf.constant([_raw_path(prepared.cache_folder, i) for i in range(len(prepared.paths))])
        return lambda i: tf.reshape(
            tf.io.decode_raw(tf.io.read_file(tf.gather(raw, i)), tf.uint8), [height, width, 3]
        )
    paths = path_tensor(prepared.paths)
    options = prepared.options
    return lambda i: load_image(tf.gather(paths, i), options.image_size, options.resize_method)


def read_epoch(
    prepared: Prepared, first: tf.Tensor, position_of: Callable[[tf.Tensor], tf.Tensor]
) -> tf.data.Dataset:
    """(position, uint8 pixels, readable) for the epoch's places `first`..n-1, where
    `position_of(places)` maps places (a vector) to positions in `prepared.paths`; in
    order, read in parallel. Only a split prepared without its decode can hold a file
    that fails to decode: its place gets a blank, `readable` False, named on stderr."""
    options, count = prepared.options, len(prepared.paths)
    places = tf.data.Dataset.range(first, count)
    if not prepared.decoded:
        return _read_catching(prepared, places, position_of)
    pixels_of = _pixel_reader(prepared)

    def read(place: tf.Tensor):
        position = position_of(place[None])[0]
        return position, pixels_of(position), tf.constant(True)

    return places.map(read, num_parallel_calls=options.parallel_calls)


_LEFT_OUT = f" ({scan.CORRUPT}): left out of its step"


def _read_catching(prepared: Prepared, places, position_of) -> tf.data.Dataset:
    """`read_epoch`'s failure catching, one image at a time: a dataset of the decoded
    image, or of none when the decoder fails, then the blank; the first of the two is the
    place's element (the blank is built only when needed). Each place stands alone, so
    the tf.data service may hand its workers any places. 0.60-0.93 of the plain parallel
    decode's rate on 2 cores (BUILD.md)."""
    options = prepared.options
    paths = path_tensor(prepared.paths)
    blank = tf.zeros((*options.image_size, 3), tf.uint8)

    def read(position: tf.Tensor):
        path = tf.gather(paths, position)
        return position, load_image(path, options.image_size, options.resize_method), True

    def left_out(position: tf.Tensor):
        line = tf.strings.join(
            ["rps_tfdata: unreadable image ", tf.gather(paths, position), _LEFT_OUT]
        )
        tf.print(line, output_stream=sys.stderr)
        return position, blank, tf.constant(False)

    def read_or_blank(place: tf.Tensor) -> tf.data.Dataset:
        one = tf.data.Dataset.from_tensors(position_of(place[None])[0])
        return one.map(read).ignore_errors().concatenate(one.map(left_out)).take(1)

    return places.interleave(
        read_or_blank,
        cycle_length=options.parallel_calls if options.parallel_calls > 0 else None,
        num_parallel_calls=options.parallel_calls,
    )
