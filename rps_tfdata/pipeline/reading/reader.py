"""The one reader: a class-per-folder directory, a list of files or an array of images
becomes a subset read once (`Prepared`), with IDG's split (`listing.split_rows`) done
here for each of them, and, when several workers read one subset, each worker's shard of
it (`shards.Shard`: every N-th image, before any decode).

A directory is split per class (`flow_from_directory`), a list of files or an array as
a whole (`flow_from_dataframe`, `flow`). A subset's ids number its own images: the
k-th image of the subset (readable or not) has id k, which seeds its augmentation and
picks its row of whatever the caller keeps beside it (labels, targets, weights). The
cache is chosen here, once the subset is counted (`cache_policy.choose`): "auto" as it
fits, "memory" refused when it does not. (The trainer's sources take the same two steps,
`listing.subset` and `prepare.prepare`, themselves: they shard the training split across
workers and reuse a run's file index.)
"""

from typing import Callable, Optional, Sequence

import numpy as np
from absl import logging

from rps_tfdata.infra import fs, resources
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import cache_policy, listing, prepare, progress
from rps_tfdata.pipeline.reading.prepare import Prepared
from rps_tfdata.pipeline.shards import WHOLE, Shard


def read_directory(
    directory: str,
    options: PipelineOptions,
    *,
    classes: Optional[Sequence[str]] = None,
    follow_links: bool = False,
    validation_split: float = 0.0,
    subset: Optional[str] = None,
    name: str = "all",
    shard: Shard = WHOLE,
    say: Callable[[str], None] = logging.info,
) -> tuple[listing.Split, Prepared]:
    """A class-per-folder directory's subset: IDG's classes, walk order and split.

    Args:
      directory: one subfolder of images per class (a path or a URL).
      options: how to read; a cache of "auto" is chosen for the subset's size.
      classes: the class subfolders to read, in label order (default: every one).
      follow_links: follow symlinked subfolders.
      validation_split: the share of each class that is the validation subset.
      subset: "training", "validation" or None (every file).
      name: tells the subsets' disk caches apart.
      shard: read only this worker's share of the subset (its ids keep their places).
      say: where a read of more than a few seconds says how far it is.

    Returns:
      The subset's files and labels by id, and the subset (or its shard) read once.

    Raises:
      DatasetLayoutError: no such folder, or no class folder in it.
      ValueError: an unknown `subset`; a memory cache asked for that does not fit
        (`cache_policy.MemoryCacheTooLargeError`).
    """
    listed = listing.list_folder(directory, classes=classes, follow_links=follow_links)
    chosen = listing.subset(listed, validation_split, subset)
    return chosen, _prepared(chosen.paths, options, name, shard, say)


def read_files(
    paths: Sequence[str],
    options: PipelineOptions,
    *,
    validation_split: float = 0.0,
    subset: Optional[str] = None,
    name: str = "all",
    shard: Shard = WHOLE,
    say: Callable[[str], None] = logging.info,
) -> tuple[slice, Prepared]:
    """A list of image files' subset (IDG's split of the whole list), read once; the
    arguments as `read_directory`'s.

    Returns:
      The span of `paths` the subset holds, and the subset (or its shard) read once.

    Raises:
      ValueError: as `read_directory`.
    """
    span = listing.split_rows(len(paths), validation_split, subset)
    return span, _prepared(list(paths[span]), options, name, shard, say)


def read_pixels(
    pixels: np.ndarray,
    options: PipelineOptions,
    *,
    validation_split: float = 0.0,
    subset: Optional[str] = None,
    shard: Shard = WHOLE,
) -> tuple[slice, Prepared]:
    """An array of images' subset (IDG's split of the whole array), held in memory.

    Args:
      pixels: (n, height, width, channels) images.
      options: how the passes feed them.
      validation_split, subset, shard: as `read_files`.

    Returns:
      The span of `pixels` the subset holds, and the subset (or its shard), in
      `pixels`' dtype.
    """
    span = listing.split_rows(len(pixels), validation_split, subset)
    ids = shard.ids(len(pixels[span]))
    return span, prepare.from_pixels(pixels[span][ids.start :: ids.step], options, ids=ids)


def existing_images(paths: Sequence[str], say: Callable[[str], None] = logging.info) -> np.ndarray:
    """Which of `paths` IDG's `validate_filenames` keeps: an image's extension, and a
    file there. Many files are looked at once on a remote file system, and a check
    that takes more than a few seconds says how far it is through `say`."""
    what = f"Checking the {len(paths):,} files the frame names"
    found = progress.for_each_file(what, _is_image_file_there, paths, say)
    return np.array(found, bool)


def _is_image_file_there(path: str) -> bool:
    return listing.is_image_file(path) and fs.isfile(path)


def _prepared(
    paths: list[str], options: PipelineOptions, name: str, shard: Shard, say: Callable[[str], None]
) -> Prepared:
    """The shard of a subset's files read once, each keeping its id in the subset."""
    ids = shard.ids(len(paths))
    mine = [paths[i] for i in ids]
    options = _cached(options, len(mine))
    # A memory cache is filled by the first pass as it reads: the subset is ready once
    # it is listed (`filling`). A disk cache is filled now, "none" checked now.
    decode = options.cache != "memory"
    return prepare.prepare(mine, options, name=name, ids=ids, decode=decode, say=say)


def _cached(options: PipelineOptions, count: int) -> PipelineOptions:
    """`options` with the cache chosen for `count` images (`cache_policy.choose`)."""
    if options.cache not in ("auto", "memory"):
        return options
    room = resources.memory_room()
    choice = cache_policy.choose(options.cache, [count], options.pixel_shape, room)
    logging.info("image cache %s (cache=%r): %s", choice.cache, options.cache, choice.need)
    return options._replace(cache=choice.cache)
