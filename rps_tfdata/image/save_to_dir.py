"""IDG's `save_to_dir`: each image a flow yields, also written as a file.

IDG stretches each image to 0..255, truncates it to 8 bits and saves it with PIL as
`PREFIX_INDEX_HASH.FORMAT`; here the same pixels are encoded by TensorFlow (PNG bytes
PIL's equal in pixels, JPEG at PIL's default quality) and written under a temporary
name, then renamed.
"""

import os
from typing import NamedTuple, Optional

import tensorflow as tf

from rps_tfdata.infra import atomic, fs

# What `save_to_dir` can write, as IDG names the formats.
SAVE_FORMATS = ("png", "jpeg", "jpg")
# PIL's JPEG quality when none is given (IDG saves with PIL's defaults).
_PIL_JPEG_QUALITY = 75


class SaveToDir(NamedTuple):
    """Where a flow's images are written, and how they are named."""

    folder: str
    prefix: str
    format: str


def checked(
    save_to_dir: Optional[str], save_prefix: str, save_format: str, *, channels: int
) -> Optional[SaveToDir]:
    """IDG's `save_to_dir` keywords checked, or None when nothing is saved.

    Raises:
      ValueError: a format this cannot write, RGBA as JPEG, or a folder that is missing.
    """
    if not save_to_dir:
        return None
    if save_format not in SAVE_FORMATS:
        raise ValueError(f"save_format={save_format!r}: expected one of {SAVE_FORMATS}")
    if channels == 4 and save_format != "png":
        raise ValueError(
            f"save_format={save_format!r} cannot hold RGBA images; use save_format='png'"
        )
    if channels not in (1, 3, 4):
        raise ValueError(f"save_to_dir writes images of 1, 3 or 4 channels, not {channels}")
    if not fs.isdir(save_to_dir):
        raise ValueError(f"save_to_dir {save_to_dir!r} is not a folder; create it first")
    return SaveToDir(save_to_dir, save_prefix, save_format)


def written(
    x: tf.Tensor,
    rows: tf.Tensor,
    pass_number: tf.Tensor,
    target: SaveToDir,
    *,
    channels_first: bool,
) -> tf.Tensor:
    """Writes each image of the batch `x` into `target` (INDEX in its name is the
    image's row in the flow) and returns `x` once they are written."""
    images = tf.transpose(x, [0, 2, 3, 1]) if channels_first else x
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    shifted = images - low
    high = tf.reduce_max(shifted, axis=[1, 2, 3], keepdims=True)
    pixels = tf.cast(tf.floor(tf.where(high != 0, shifted / high, shifted) * 255), tf.uint8)
    if target.format == "png":
        encoded = tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string)
    else:
        encoded = tf.map_fn(
            lambda image: tf.io.encode_jpeg(image, quality=_PIL_JPEG_QUALITY),
            pixels,
            fn_output_signature=tf.string,
        )
    indexes = tf.strings.as_string(rows)
    hashes = tf.strings.to_hash_bucket_fast(
        tf.strings.join([tf.strings.as_string(pass_number), indexes], "/"), 10**7
    )
    names = tf.strings.join(
        [target.prefix, "_", indexes, "_", tf.strings.as_string(hashes), ".", target.format]
    )
    done = tf.py_function(
        lambda names, data: _write_all(target.folder, names, data), [names, encoded], tf.int64
    )
    with tf.control_dependencies([done]):
        return tf.identity(x)


def _write_all(folder: str, names: tf.Tensor, data: tf.Tensor) -> int:
    """Each encoded image into `folder` under a temporary name, renamed into place."""
    for name, contents in zip(names.numpy(), data.numpy(), strict=True):
        with atomic.writing(os.path.join(folder, name.decode())) as temporary:
            with fs.open_file(temporary, "wb") as f:
                f.write(contents)
    return len(names)
