"""PIL's `Image.resize`, in the graph, bit for bit: what IDG's `load_img` does to a file.

IDG resizes with PIL, and every one of PIL's methods has its own arithmetic that
`tf.image.resize` does not share: NEAREST picks source pixels by a float64 position
accumulated pixel by pixel; the filters (bilinear, bicubic, lanczos, box, hamming)
are separable convolutions whose support grows with the scale (an antialias), with
coefficients rounded to 22-bit integers and a clip to 8 bits after each pass
(horizontal, then vertical; Pillow 13 runs the vertical pass first when the height
shrinks by more than twice what the width does, and so does this when the Pillow beside
it, IDG's, is 13 or later, or absent). Colour with alpha is resampled premultiplied, as PIL does.
`keep_aspect_ratio` crops the centre box IDG computes, and resamples from that box.
Read from Pillow's `Resample.c`, `Geometry.c` and `Image.resize`, and checked against
PIL itself in the tests.
"""

import functools
import importlib.metadata
import math

import numpy as np
import tensorflow as tf

# IDG's `interpolation` names, and the filter of each (its function of the distance in
# source pixels, and its support at scale 1).
FILTERS = ("bilinear", "bicubic", "lanczos", "box", "hamming")
METHODS = ("nearest", *FILTERS)
_SUPPORT = {"box": 0.5, "bilinear": 1.0, "hamming": 1.0, "bicubic": 2.0, "lanczos": 3.0}
_PRECISION_BITS = 32 - 8 - 2  # PIL's fixed point: 8 bits of result, 2 of headroom
# Source sides up to this read PIL's exact NEAREST indices from a table; larger ones (rare)
# accumulate in the graph.
_TABLE_MAX_SIDE = 4096


def _pillow_orders_passes() -> bool:
    """Whether PIL picks the order of its two passes (Pillow 13 and later), else
    horizontal always comes first."""
    try:
        major = importlib.metadata.version("pillow").split(".")[0]
    except importlib.metadata.PackageNotFoundError:
        return True
    return int(major) >= 13


_ORDERS_PASSES = _pillow_orders_passes()


@functools.lru_cache(maxsize=8)
def _nearest_table(size_out: int) -> np.ndarray:
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


def nearest_indices(size_in: tf.Tensor, size_out: int) -> tf.Tensor:
    """Source indices of PIL's NEAREST resize from `size_in` to `size_out` pixels.

    `tf.image.resize(method="nearest")` picks a neighbouring source pixel at some sizes
    (8-10% of pixels from 160 or 180 to 150); these indices match PIL (and so IDG's
    `load_img`) bit for bit. Both candidates are computed and one selected (no `tf.cond`,
    which cost 15% of decode throughput in a tf.data map).
    """
    size_in = tf.cast(size_in, tf.int32)
    table = tf.constant(_nearest_table(size_out))
    exact = tf.cast(tf.gather(table, tf.minimum(size_in, _TABLE_MAX_SIDE)), tf.int32)
    box = tf.stack([0, size_in])
    return tf.where(size_in <= _TABLE_MAX_SIDE, exact, _accumulated(box, size_in, size_out))


def _accumulated(box: tf.Tensor, size_in: tf.Tensor, size_out: int) -> tf.Tensor:
    """PIL's NEAREST indices from the box [box[0], box[1]) of a side (`ImagingScaleAffine`):
    the position starts at `box0 + scale / 2` and adds `scale` per pixel, in float64."""
    box = tf.cast(box, tf.float64)
    scale = (box[1] - box[0]) / size_out
    steps = tf.concat([[box[0] + scale * 0.5], tf.fill([size_out - 1], scale)], axis=0)
    positions = tf.math.cumsum(steps)
    return tf.minimum(tf.cast(positions, tf.int32), tf.cast(size_in, tf.int32) - 1)


def _filter(name: str, x: tf.Tensor) -> tf.Tensor:
    """PIL's filter `name` at distances `x` (float64), as `Resample.c` defines it."""
    ax, zero, one = tf.abs(x), tf.zeros_like(x), tf.ones_like(x)
    if name == "box":
        return tf.where((x > -0.5) & (x <= 0.5), one, zero)
    if name == "bilinear":
        return tf.where(ax < 1.0, 1.0 - ax, zero)
    if name == "bicubic":
        a = -0.5
        near = ((a + 2.0) * ax - (a + 3.0)) * ax * ax + 1
        far = (((ax - 5) * ax + 8) * ax - 4) * a
        return tf.where(ax < 1.0, near, tf.where(ax < 2.0, far, zero))

    def sinc(v: tf.Tensor) -> tf.Tensor:  # sin(pi v) / (pi v), 1 at 0
        safe = tf.where(v == 0, one, v * math.pi)
        return tf.where(v == 0, one, tf.sin(safe) / safe)

    if name == "hamming":
        # PIL writes the window's constants as C floats: 0.54f and 0.46f.
        window = float(np.float32(0.54)) + float(np.float32(0.46)) * tf.cos(ax * math.pi)
        return tf.where(ax >= 1.0, zero, sinc(ax) * window)
    return tf.where((x >= -3.0) & (x < 3.0), sinc(x) * sinc(x / 3), zero)


def _coefficients(size_in, box0, box1, size_out: int, name: str):
    """PIL's `precompute_coeffs` and 8-bit normalisation for one side: for each output
    pixel, the source indices it reads (output, taps) and their 22-bit integer weights
    (as float64, exact)."""
    box0, box1 = tf.cast(box0, tf.float64), tf.cast(box1, tf.float64)
    scale = (box1 - box0) / size_out
    filter_scale = tf.maximum(scale, 1.0)
    support = _SUPPORT[name] * filter_scale
    taps = tf.cast(tf.math.ceil(support), tf.int32) * 2 + 1
    center = box0 + (tf.range(size_out, dtype=tf.float64) + 0.5) * scale
    first = tf.maximum(tf.floor(center - support + 0.5), 0.0)
    last = tf.minimum(tf.floor(center + support + 0.5), tf.cast(size_in, tf.float64))
    offsets = tf.range(taps, dtype=tf.float64)[None, :]
    position = first[:, None] + offsets
    weights = _filter(name, (position - center[:, None] + 0.5) * (1.0 / filter_scale))
    weights = tf.where(position < last[:, None], weights, tf.zeros_like(weights))
    total = tf.math.cumsum(weights, axis=1)[:, -1:]  # PIL adds the taps left to right
    weights = tf.where(total != 0, weights / tf.where(total != 0, total, 1.0), weights)
    fixed = weights * (1 << _PRECISION_BITS)
    fixed = tf.where(weights < 0, tf.math.ceil(fixed - 0.5), tf.floor(fixed + 0.5))
    indices = tf.minimum(tf.cast(position, tf.int32), tf.cast(size_in, tf.int32) - 1)
    return indices, fixed


def _pass(image: tf.Tensor, indices: tf.Tensor, weights: tf.Tensor, axis: int) -> tf.Tensor:
    """One 8-bit pass of PIL's convolution along `axis` (0: rows, 1: columns) of a float64
    (h, w, c) image of integers: the sum of taps times 22-bit weights, rounded by PIL's
    half (1 << 21) and shift, clipped to 0..255."""
    gathered = tf.gather(image, indices, axis=axis)  # axis grows to (output, taps)
    shape = [1, 1, 1, 1]
    shape[axis], shape[axis + 1] = tf.shape(weights)[0], tf.shape(weights)[1]
    total = tf.reduce_sum(gathered * tf.reshape(weights, shape), axis=axis + 1)
    half = float(1 << (_PRECISION_BITS - 1))
    return tf.clip_by_value(tf.floor((total + half) / (1 << _PRECISION_BITS)), 0.0, 255.0)


def _premultiplied(image: tf.Tensor) -> tf.Tensor:
    """PIL's RGBA -> RGBa: each colour times alpha / 255, rounded as its MULDIV255."""
    alpha = image[..., 3:]
    product = image[..., :3] * alpha + 128
    colour = tf.floor((tf.floor(product / 256) + product) / 256)
    return tf.concat([colour, alpha], axis=-1)


def _unpremultiplied(image: tf.Tensor) -> tf.Tensor:
    """PIL's RGBa -> RGBA: each colour times 255 / alpha, truncated, clipped to 255 (alpha 0
    and 255 keep the colour)."""
    alpha = image[..., 3:]
    divided = tf.minimum(tf.floor(255 * image[..., :3] / tf.maximum(alpha, 1.0)), 255.0)
    colour = tf.where((alpha == 0) | (alpha == 255), image[..., :3], divided)
    return tf.concat([colour, alpha], axis=-1)


def aspect_box(height: tf.Tensor, width: tf.Tensor, target: tuple[int, int]) -> tf.Tensor:
    """IDG's `keep_aspect_ratio` crop: the centred box of the target's aspect ratio,
    [left, top, right, bottom] in source pixels (int32)."""
    target_height, target_width = target
    crop_height = tf.minimum(height, (width * target_height) // target_width)
    crop_width = tf.minimum(width, (height * target_width) // target_height)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return tf.stack([left, top, left + crop_width, top + crop_height])


def check_interpolation(name: str) -> None:
    """Refuses an interpolation PIL does not have (IDG's `interpolation` names PIL's).

    Raises:
      ValueError: `name` is not one of `METHODS`.
    """
    if name not in METHODS:
        raise ValueError(
            f"Invalid interpolation method {name!r}: expected one of {METHODS} "
            "(PIL's, which IDG uses)"
        )


def resize(
    image: tf.Tensor, size: tuple[int, int], method: str, *, keep_aspect_ratio: bool = False
) -> tf.Tensor:
    """One uint8 (h, w, C) image resized as IDG's `load_img` resizes it with `method`
    (one of `METHODS`); a 4-channel image is RGBA. uint8 out."""
    check_interpolation(method)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    if keep_aspect_ratio:
        box = aspect_box(height, width, size)
    else:
        box = tf.stack([0, 0, width, height])
    if method == "nearest":
        rows = _box_nearest(box[1], box[3], height, size[0], keep_aspect_ratio)
        cols = _box_nearest(box[0], box[2], width, size[1], keep_aspect_ratio)
        return tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)
    pixels = tf.cast(image, tf.float64)
    alpha = image.shape[-1] == 4
    if alpha:
        pixels = _premultiplied(pixels)
    cols, col_weights = _coefficients(width, box[0], box[2], size[1], method)
    rows, row_weights = _coefficients(height, box[1], box[3], size[0], method)
    shrink_height, shrink_width = height - size[0], width - size[1]
    vertical_first = (shrink_height > 0) & (shrink_height > 2 * shrink_width)
    if _ORDERS_PASSES:
        pixels = tf.cond(
            vertical_first,
            lambda: _pass(_pass(pixels, rows, row_weights, axis=0), cols, col_weights, axis=1),
            lambda: _pass(_pass(pixels, cols, col_weights, axis=1), rows, row_weights, axis=0),
        )
    else:
        pixels = _pass(_pass(pixels, cols, col_weights, axis=1), rows, row_weights, axis=0)
    if alpha:
        pixels = _unpremultiplied(pixels)
    return tf.cast(pixels, tf.uint8)


def _box_nearest(start, end, size_in, size_out: int, cropped: bool) -> tf.Tensor:
    """NEAREST's indices along one side, from the whole side or from a crop box."""
    if not cropped:
        return nearest_indices(size_in, size_out)
    return _accumulated(tf.stack([start, end]), size_in, size_out)
