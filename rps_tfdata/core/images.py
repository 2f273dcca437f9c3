"""Reading one image as ImageDataGenerator does: decode to uint8 RGB, resize like PIL.

The training pipeline, evaluation and prediction all read images through `load_image`,
so a model never sees pixels prepared another way than it was trained on.
"""

import functools

import numpy as np
import tensorflow as tf

RESIZE_METHODS = ("pil_nearest", "bilinear", "area")


# Source sides up to this read PIL's exact indices from a table; larger ones (rare)
# use the product formula, which can pick the neighbouring pixel where PIL's float
# accumulation lands just below an integer.
_TABLE_MAX_SIDE = 4096


@functools.lru_cache(maxsize=8)
def _pil_nearest_table(size_out: int) -> np.ndarray:
    """PIL's NEAREST source indices for every source side 0.._TABLE_MAX_SIDE: (sides, size_out).

    PIL starts at `scale / 2` and adds `scale` once per output pixel in float64, then
    truncates. Where `(k + 1/2) * scale` is an exact integer the accumulated rounding
    decides between two pixels, so the product formula is wrong there; NumPy's cumsum
    accumulates left to right exactly as PIL does.
    """
    sides = np.arange(_TABLE_MAX_SIDE + 1, dtype=np.float64)[:, None]
    steps = np.repeat(sides / size_out, size_out, axis=1)
    steps[:, 0] *= 0.5
    last = np.maximum(sides.astype(np.int64) - 1, 0)
    return np.minimum(np.cumsum(steps, axis=1).astype(np.int64), last).astype(np.int16)


def pil_nearest_indices(size_in: tf.Tensor, size_out: int) -> tf.Tensor:
    """Source indices of PIL's NEAREST resize from `size_in` to `size_out` pixels.

    `tf.image.resize(method="nearest")` picks a neighbouring source pixel at some sizes
    (8-10% of pixels from 160 or 180 to 150); these indices match PIL (and so IDG's
    `load_img`) bit for bit up to 4,096 source pixels. Both candidates are computed and
    one selected (no `tf.cond`, which cost 15% of decode throughput in a tf.data map).
    """
    size_in = tf.cast(size_in, tf.int32)
    table = tf.constant(_pil_nearest_table(size_out))
    exact = tf.cast(tf.gather(table, tf.minimum(size_in, _TABLE_MAX_SIDE)), tf.int32)
    scale = tf.cast(size_in, tf.float64) / size_out
    product = tf.cast((tf.range(size_out, dtype=tf.float64) + 0.5) * scale, tf.int32)
    return tf.where(size_in <= _TABLE_MAX_SIDE, exact, tf.minimum(product, size_in - 1))


def resize(image: tf.Tensor, image_size: tuple[int, int], method: str) -> tf.Tensor:
    """Resizes one uint8 (h, w, 3) image to `image_size`, keeping uint8."""
    height, width = image_size
    if method == "pil_nearest":
        shape = tf.shape(image)
        rows = pil_nearest_indices(shape[0], height)
        cols = pil_nearest_indices(shape[1], width)
        return tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method must be one of {RESIZE_METHODS}. Received: {method!r}")
    resized = tf.image.resize(image, image_size, method=method)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """Decodes PNG, JPEG, BMP (and GIF's first frame) bytes to uint8 RGB.

    JPEG uses the accurate integer DCT, which matches PIL; TF's default fast DCT differs
    by up to 3 levels. Alpha is dropped and grey is replicated, as PIL's convert("RGB").
    """
    return tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )


def load_image(path: tf.Tensor, image_size: tuple[int, int], method: str) -> tf.Tensor:
    """Reads, decodes and resizes one image file to uint8 (height, width, 3)."""
    image = resize(decode_image(tf.io.read_file(path)), image_size, method)
    image.set_shape([*image_size, 3])
    return image


def rescale(images: tf.Tensor) -> tf.Tensor:
    """uint8 or 0..255 float -> float32 in [0, 1], IDG's `rescale=1/255`."""
    return tf.cast(images, tf.float32) * (1.0 / 255.0)
