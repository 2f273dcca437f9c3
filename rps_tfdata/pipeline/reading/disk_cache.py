"""`--image_cache=disk`: a split's decoded pixels as one raw file per image, in a folder
named by a fingerprint of the files (paths, sizes, mtimes), the image size, the resize
method and the split.

Other data or settings never read it (their name differs, and an older folder of the
same split is removed); a killed fill leaves no folder (it is built in staging and
marked complete, `atomic.build_folder`); an epoch reads one image at a time, so memory
stays bounded by the batches in flight, whatever the size of the set.
"""

import json
import os
from typing import Callable

import tensorflow as tf

from rps_tfdata.infra import atomic, fs
from rps_tfdata.pipeline.reading import headers

_BAD_LIST_FILE = "unreadable.json"
# The caller's decode of every readable file: hands `store(first_id, images)` each batch
# of them and returns the files left out.
Fill = Callable[[Callable[[int, tf.Tensor], None]], list[headers.BadImage]]


def raw_path(folder: str, image_id: int) -> str:
    """The raw uint8 pixels of the `image_id`-th readable file."""
    return os.path.join(folder, f"{image_id:07d}.u8")


def _fill(staging: str, fill: Fill) -> None:
    """One raw file of uint8 pixels per image id, and the list of unreadable files."""

    def store(first_id: int, images: tf.Tensor) -> None:
        for offset, pixels in enumerate(images.numpy()):
            with fs.open_file(raw_path(staging, first_id + offset), "wb") as f:
                f.write(pixels.tobytes())

    bad = fill(store)
    atomic.write_json(os.path.join(staging, _BAD_LIST_FILE), headers.as_records(bad))


def open_or_fill(cache_path: str, name: str, fill: Fill) -> tuple[str, list[headers.BadImage]]:
    """The folder `name` under `cache_path` (SPLIT-DIGEST: the split and a fingerprint of
    its files and of the image settings), filled once by `fill`, and its unreadable
    files; the split's folders of other data or settings are removed."""
    fs.makedirs(cache_path)
    folder = os.path.join(cache_path, name)
    split = name.rsplit("-", 1)[0]
    for stale in fs.listdir(cache_path):  # other data or settings: never again
        path = os.path.join(cache_path, stale)
        if stale.startswith(f"{split}-") and path != folder and atomic.is_complete(path):
            fs.rmtree(path)
    atomic.build_folder(folder, lambda staging: _fill(staging, fill))
    with fs.open_file(os.path.join(folder, _BAD_LIST_FILE)) as f:
        bad = [headers.BadImage(**record) for record in json.load(f)]
    return folder, bad


def reader(folder: str, count: int, pixel_shape: tuple[int, int, int]) -> Callable:
    """A graph function: image id -> its uint8 (h, w, channels) pixels, read from `folder`."""
    raw = tf.constant([raw_path(folder, i) for i in range(count)])
    return lambda i: tf.reshape(
        tf.io.decode_raw(tf.io.read_file(tf.gather(raw, i)), tf.uint8), pixel_shape
    )
