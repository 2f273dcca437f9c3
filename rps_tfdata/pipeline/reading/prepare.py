"""The first read: a list of image files becomes a `Prepared` split, read once.

  screen headers    every file's header in Python (`headers.screen`): what can never
                    decode (empty, truncated, TIFF, a decompression bomb) is named, and
                    never handed to a decoder
  decode, resize    in parallel, as IDG reads (`decode.load_image`); a file the decoder
                    rejects is named
  cache             the readable files' uint8 pixels: one tensor in memory, one raw file
                    per image on disk (`disk_cache`), or nothing (every pass decodes
                    again; then the decode can wait for the passes, `decode=False`)

With the memory cache and `decode=False`, none of this happens before the passes but a
stat of each file (or the header screen, when the caller has the facts): the first pass
reads, checks, decodes and caches each image as it goes (`filling`), and `images` is the
cache's variable, whose rows hold pixels only once a pass has read them.

Reading once is what makes every later pass fast; naming a bad file here, once, keeps
it from failing a pass in the middle. Images already in memory (a flow's arrays, TFDS's
decoded split) become a `Prepared` through `from_pixels`.

Two indexes: an image's *row* is its place in the `Prepared` (its path in `paths`, its
slot in the cache), counted among the readable files; its *id* (`ids[row]`) is its place
in the caller's whole list (the split's listing, a frame's rows, an array), the same
whichever files are unreadable or whichever worker reads it: what seeds its augmentation
and keys the caller's labels. (Before the screen, a file is known by its position in
the `paths` handed to `prepare`.)
"""

import functools
import os
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from rps_tfdata.infra import fs
from rps_tfdata.infra.errors import DatasetLayoutError
from rps_tfdata.pipeline.options import AUTOTUNE, COLOR_MODES, PipelineOptions
from rps_tfdata.pipeline.reading import disk_cache, file_facts, headers, progress
from rps_tfdata.pipeline.reading.decode import can_decode, image_from_bytes
from rps_tfdata.pipeline.reading.filling import Filling

# The pipeline's functions hold no Python control flow on tensors: tf.data traces them as
# written, without autograph's conversion (which costs start-up time, never speed).
as_written = tf.autograph.experimental.do_not_convert


class Prepared(NamedTuple):
    """A split after its first read: its readable images and where their pixels are.

    Attributes:
      paths: the readable files, in the split's order (for images given as pixels: the
        names the caller gave them, or none).
      ids: each readable image's place in the caller's whole list (module doc).
      bad: the files left out, with the reason.
      options: how the pixels were read.
      images: the pixels in memory, one row per image: uint8 from a memory cache,
        the caller's dtype for `from_pixels`; None when they are elsewhere.
      cache_folder: the raw files' folder with cache="disk", else None.
      decoded: every file in `paths` was decoded once (False: the passes decode them).
      filling: the memory cache the passes fill as they read (`images` is its
        variable), when the files were not read before the passes.
    """

    paths: list[str]
    ids: list[int]
    bad: list[headers.BadImage]
    options: PipelineOptions
    images: Optional[tf.Tensor] = None
    cache_folder: Optional[str] = None
    decoded: bool = True
    filling: Optional[Filling] = None

    @property
    def count(self) -> int:
        """How many images the split holds (files, or rows of `images`)."""
        return len(self.ids)

    @property
    def pixel_shape(self) -> tuple[int, ...]:
        """One image's shape as the passes read it."""
        if self.images is not None:
            return tuple(self.images.shape[1:])
        return self.options.pixel_shape


def with_options(dataset: tf.data.Dataset, options: PipelineOptions) -> tf.data.Dataset:
    """`dataset` with the tf.data options every dataset of the pipeline runs with."""
    tf_options = tf.data.Options()
    # Determinism makes runs repeatable and measured free here (BUILD.md: no change in
    # pipeline throughput); deterministic=False lets parallel maps return out of order.
    tf_options.deterministic = options.deterministic
    tf_options.autotune.enabled = True
    if options.threadpool_size:
        tf_options.threading.private_threadpool_size = options.threadpool_size
    return dataset.with_options(tf_options)


def load(path: tf.Tensor, options: PipelineOptions) -> tf.Tensor:
    """One file read as `options` say: decoded, resized, uint8."""
    return load_bytes(tf.io.read_file(path), options)


def load_bytes(contents: tf.Tensor, options: PipelineOptions) -> tf.Tensor:
    """One file's bytes read as `options` say: decoded, resized, uint8."""
    reading = (options.color_mode, options.keep_aspect_ratio)
    return _loader(tuple(options.image_size), options.resize_method, *reading)(contents)


def load_checked(contents: tf.Tensor, options: PipelineOptions) -> tuple[tf.Tensor, tf.Tensor]:
    """(whether one file's bytes are a PNG, JPEG, GIF or BMP within PIL's pixel limit,
    its pixels as `load_bytes` gives them: zeros if not): the header screen in the graph,
    so that no decoder takes a bomb's memory."""
    reading = (options.color_mode, options.keep_aspect_ratio)
    return _checked_loader(tuple(options.image_size), options.resize_method, *reading)(contents)


@functools.cache
def _checked_loader(
    image_size: tuple[int, int], method: str, color_mode: str, keep_aspect_ratio: bool
) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """`load_checked` for one way of reading, traced once in a process (as `_loader`)."""
    load = _loader(image_size, method, color_mode, keep_aspect_ratio)
    blank = (*image_size, COLOR_MODES[color_mode])

    def read(contents: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        is_image = can_decode(contents)
        return is_image, tf.cond(
            is_image, lambda: load(contents), lambda: tf.zeros(blank, tf.uint8)
        )

    return tf.function(read, input_signature=[tf.TensorSpec([], tf.string)], autograph=False)


@functools.cache
def _loader(
    image_size: tuple[int, int], method: str, color_mode: str, keep_aspect_ratio: bool
) -> Callable[[tf.Tensor], tf.Tensor]:
    """`image_from_bytes` for one way of reading, traced once in a process: every
    dataset that reads files this way (a run's splits, each flow, each pass without a
    cache) calls the same function instead of building the decoder and PIL's resize
    again, about a hundred ops, which cost 0.1 s of Python each time here."""

    def read(contents: tf.Tensor) -> tf.Tensor:
        return image_from_bytes(
            contents, image_size, method, color_mode=color_mode, keep_aspect_ratio=keep_aspect_ratio
        )

    return tf.function(read, input_signature=[tf.TensorSpec([], tf.string)], autograph=False)


def prepare(
    paths: Sequence[str],
    options: PipelineOptions,
    *,
    name: str = "data",
    ids: Optional[Sequence[int]] = None,
    decode: bool = True,
    facts: Optional[Sequence[file_facts.Facts]] = None,
    say: Callable[[str], None] = logging.info,
) -> Prepared:
    """Reads a split once: every file screened, the readable ones' pixels kept where
    `options.cache` says, each unreadable file named with its reason.

    Args:
      paths: the split's image files (paths or URLs), in the split's order.
      options: how to read (size, resize, cache, parallelism).
      name: tells the splits' disk caches apart (one folder per split).
      ids: the files' places in the caller's whole list, when `paths` is part of it (a
        worker's shard); default 0..n-1.
      decode: decode every file now (False: the passes decode each file as they meet
        it, and skip one that fails; with cache "memory", the first pass fills the
        cache as it goes (`filling`), and the headers are screened then too unless
        `facts` are given). A memory cache is filled now whatever `decode` says in a
        distribution strategy's scope, whose variables are the strategy's.
      facts: the files' stats and header screen when the caller has them
        (`file_facts.gather`), else read here.
      say: where a read that takes more than a few seconds says how far it is
        (`progress.Progress`).

    Returns:
      The readable files and their ids, the unreadable ones with reasons, and the cache
      that holds their pixels.
    """
    ids = list(range(len(paths))) if ids is None else list(ids)
    if options.cache == "memory" and not decode and not tf.distribute.has_strategy():
        return _filled_by_the_passes(paths, ids, options, facts, say)
    if facts is None:
        facts = file_facts.read_all(paths, say)
    # Headers first, in Python: what can never decode is named, and never decoded.
    candidates, bad = headers.screen(paths, [f.problem for f in facts])
    decoded = decode or options.cache != "none"
    images = folder = None
    count = f"{len(candidates):,} images"
    if options.cache == "disk":  # one raw file per image, in a folder named by the data
        cache_name = f"{name}-{file_facts.fingerprint(paths, facts, name, *_reading(options))}"
        where = fs.join(options.cache_path, cache_name)
        reading = progress.Progress(f"Reading {count} into {where}", len(candidates), say)

        def fill(store: Callable[[int, tf.Tensor], None]) -> list[headers.BadImage]:
            return bad + _decode_candidates(paths, candidates, options, store, reading)

        folder, bad = disk_cache.open_or_fill(options.cache_path, cache_name, fill)
    elif options.cache == "memory":  # one uint8 tensor
        reading = progress.Progress(f"Reading {count} into memory", len(candidates), say)
        images, corrupt = _memory_cache(paths, candidates, options, reading)
        bad = bad + corrupt
    elif decoded:  # checked by a real decode, then dropped: the passes decode again
        reading = progress.Progress(f"Checking {count} by decoding them", len(candidates), say)
        bad = bad + _decode_candidates(paths, candidates, options, lambda _, b: None, reading)
    paths, ids = _left_out(paths, ids, bad)
    return Prepared(
        paths=paths,
        ids=ids,
        bad=sorted(bad),
        options=options,
        images=images,
        cache_folder=folder,
        decoded=decoded,
    )


def _filled_by_the_passes(
    paths: Sequence[str],
    ids: list[int],
    options: PipelineOptions,
    facts: Optional[Sequence[file_facts.Facts]],
    say: Callable[[str], None],
) -> Prepared:
    """A split whose memory cache the passes fill (`filling`): nothing is decoded now."""
    # What a reader must never open (a FIFO would block it) is screened now: by a stat,
    # or with the header when the facts are known; the headers otherwise by the passes.
    if facts is None:
        what = f"Checking {len(paths):,} files (a stat each)"
        problems = progress.for_each_file(what, headers.inspect_stat, paths, say)
        read = functools.partial(load_checked, options=options)
    else:  # screened by the facts' headers
        problems = [f.problem for f in facts]
        read = as_written(lambda contents: (tf.constant(True), load_bytes(contents, options)))
    _, bad = headers.screen(paths, problems)
    paths, ids = _left_out(paths, ids, bad)
    cache = Filling(paths, options.pixel_shape, read, parallel_calls=options.parallel_calls)
    return Prepared(
        paths=list(paths),
        ids=ids,
        bad=sorted(bad),
        options=options,
        images=cache.images,
        decoded=False,
        filling=cache,
    )


def from_pixels(
    pixels: np.ndarray,
    options: PipelineOptions,
    *,
    ids: Optional[Sequence[int]] = None,
    paths: Optional[Sequence[str]] = None,
) -> Prepared:
    """Images already decoded (a flow's arrays, TFDS's split) as a split held in memory.

    Args:
      pixels: (n, height, width, channels) images, kept in their dtype.
      options: how the passes feed them; `image_size` is taken from `pixels`.
      ids: their places in the caller's whole list (default 0..n-1).
      paths: a name for each image, for reports (default none).
    """
    pixels = np.asarray(pixels)
    ids = list(range(len(pixels))) if ids is None else [int(i) for i in ids]
    return Prepared(
        paths=list(paths or []),
        ids=ids,
        bad=[],
        options=options._replace(image_size=tuple(pixels.shape[1:3])),
        images=tf.constant(pixels),
    )


def require_images(
    prepared: Prepared, where: str, remedy: str = "check the path and the files' formats"
) -> None:
    """Raises DatasetLayoutError, naming `where` and what to do, when no image of it
    could be read: the one refusal of an empty split, whoever reads it.

    Raises:
      DatasetLayoutError: `prepared` holds no image.
    """
    if not prepared.count:
        raise DatasetLayoutError(f"{where} holds no readable image file: {remedy}")


@as_written  # plain Python, also when a dataset builds it
def path_tensor(paths: Sequence[str]) -> tf.Tensor:
    """File names as a string tensor of their bytes: a name that is not UTF-8 (Python
    holds it with surrogate escapes) reaches the file system as it was listed."""
    return tf.constant([os.fsencode(p) for p in paths], tf.string, shape=[len(paths)])


def _decoded(paths: Sequence[str], options: PipelineOptions) -> tf.data.Dataset:
    """(position in `paths`, uint8 image) for every file that decodes; the others are
    dropped. `ignore_errors` is what lets one pass decode in parallel and still tell
    which files failed: their positions are the ones missing from the output."""
    dataset = tf.data.Dataset.from_tensor_slices(path_tensor(paths)).enumerate()
    dataset = dataset.map(
        as_written(lambda i, path: (i, load(path, options))),
        num_parallel_calls=options.parallel_calls,
        deterministic=True,
    )
    return with_options(dataset.ignore_errors().prefetch(AUTOTUNE), options)


def _decode_candidates(
    paths: Sequence[str],
    candidates: Sequence[int],
    options: PipelineOptions,
    store: Callable[[int, tf.Tensor], None],
    reading: progress.Progress,
) -> list[headers.BadImage]:
    """Decodes the files at positions `candidates` (those the screen passed), handing
    `store(first_row, images)` each batch of them (an image's row is its place among
    the readable files), and telling `reading` how many files it tried; returns the files the
    decoder rejects. Batches keep Python's share of the work small and memory bounded."""
    decoded = set()
    first_row = 0
    # Output order is input order (deterministic), so rows count up as files decode.
    for positions, images in _decoded([paths[i] for i in candidates], options).batch(64):
        positions = positions.numpy()
        decoded.update(candidates[p] for p in positions)
        store(first_row, images)
        first_row += len(positions)
        reading.update(int(positions[-1]) + 1)  # files tried so far, decoded or not
    reading.finish(first_row)
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


def _memory_cache(
    paths: Sequence[str],
    candidates: Sequence[int],
    options: PipelineOptions,
    reading: progress.Progress,
):
    """(one uint8 tensor of the readable files' pixels, the files the decoder rejects)."""
    batches: list[tf.Tensor] = []
    store = lambda _, b: batches.append(b)  # noqa: E731
    corrupt = _decode_candidates(paths, candidates, options, store, reading)
    # One copy, batches to the cache (through NumPy it was two).
    if not batches:
        return tf.zeros((0, *options.pixel_shape), tf.uint8), corrupt
    return tf.concat(batches, axis=0), corrupt


def undecodable(prepared: Prepared) -> list[headers.BadImage]:
    """The files of a split prepared without its decode that the decoder rejects: one
    parallel decode pass, run only to name the files a pass could not decode."""
    kept = {int(i) for i, _ in _decoded(prepared.paths, prepared.options)}
    missing = [path for i, path in enumerate(prepared.paths) if i not in kept]
    return [headers.BadImage(path, headers.CORRUPT) for path in missing]


def decoded_now(prepared: Prepared) -> Prepared:
    """A split prepared without its decode, decoded once now: the files the decoder
    rejects leave it, named, as a decode before the passes would have left them."""
    if prepared.decoded:
        return prepared
    corrupt = undecodable(prepared)
    paths, ids = _left_out(prepared.paths, prepared.ids, corrupt)
    return prepared._replace(paths=paths, ids=ids, bad=sorted(prepared.bad + corrupt), decoded=True)


def _left_out(
    paths: Sequence[str], ids: Sequence[int], bad: Sequence[headers.BadImage]
) -> tuple[list[str], list[int]]:
    """The files of `paths` (and their ids) that are not `bad`; each bad one named."""
    for item in bad:
        logging.warning("unreadable image %s: %s", fs.printable(item.path), item.reason)
    failed = {item.path for item in bad}
    kept = [i for i, path in enumerate(paths) if path not in failed]
    return [paths[i] for i in kept], [ids[i] for i in kept]


def pixels_of(prepared: Prepared) -> Callable[[tf.Tensor], tf.Tensor]:
    """A graph function: row -> that image's pixels, from wherever they are kept (from
    memory, a vector of rows -> their images at once)."""
    if prepared.images is not None:
        images = prepared.images
        return lambda row: tf.gather(images, row)
    if prepared.cache_folder is not None:
        return disk_cache.reader(prepared.cache_folder, prepared.count, prepared.pixel_shape)
    paths, options = path_tensor(prepared.paths), prepared.options
    return lambda row: load(tf.gather(paths, row), options)
