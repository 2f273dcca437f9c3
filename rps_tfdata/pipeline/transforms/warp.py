"""IDG's transform of one image, in the graph: its geometry composed into one matrix per
image, one resampling with scipy's border rules, then its channel and brightness shifts.

The arithmetic of `IDGAugmentation`, deterministic given the parameters: `compose_matrices`
builds IDG's `O R T Sh Z O^-1` with the flips folded in; `warp` resamples once, as
scipy's `affine_transform` does for IDG (`warp_gather`: gathers that XLA compiles, on any
device); `shift_channels` and `shift_brightness` follow, in IDG's order. Images are float
on IDG's 0..255 scale, shape (batch, height, width, C).

Written once against an ops namespace `xp` with `keras.ops`' names: `tensorflow_ops`
(the default) where TensorFlow runs it, `keras.ops` inside a model on another backend.
"""

import math
from typing import Any

import tensorflow as tf

from rps_tfdata.pipeline.transforms import tensorflow_ops

# An ops namespace: `keras.ops`, or `tensorflow_ops` (the same names, TensorFlow's ops).
Ops = Any

# The parameters of a batch by IDG's keys (`get_random_transform`), each (batch,).
Params = dict[str, Any]
GEOMETRY_KEYS = ("theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical")

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
# scipy's spline orders that one warp reproduces: 0 (nearest) and 1 (bilinear, IDG's default).
INTERPOLATION_ORDERS = (0, 1)


def _affine(a, b, c, d, e, f, xp: Ops) -> Any:
    """Batch of 3x3 matrices [[a, b, c], [d, e, f], [0, 0, 1]] from (batch,) tensors."""
    zero = xp.zeros_like(a)
    entries = xp.stack([a, b, c, d, e, f, zero, zero, zero + 1], axis=-1)
    return xp.reshape(entries, [-1, 3, 3])


def check_resampling(fill_mode: str, order: int) -> None:
    """Refuses a border rule or a spline order the warp does not reproduce.

    Raises:
      ValueError: `fill_mode` not one of `FILL_MODES`, or `order` not 0 or 1.
    """
    if fill_mode not in FILL_MODES:
        raise ValueError(
            f"fill_mode must be one of {FILL_MODES}. Received: fill_mode={fill_mode!r}"
        )
    if order not in INTERPOLATION_ORDERS:
        raise ValueError(
            "interpolation_order must be 0 (nearest) or 1 (bilinear): scipy's spline "
            "orders 2-5 filter the whole image first, which one warp cannot reproduce. "
            f"Received: interpolation_order={order!r}"
        )


def compose_matrices(params: Params, image_size: tuple[int, int], xp: Ops = tensorflow_ops) -> Any:
    """Composes IDG's per-image matrices, mapping output to input pixel coordinates.

    IDG builds `O R T Sh Z O^-1` (with `O` a translation by `height/2 - 0.5`,
    `width/2 - 0.5`) and applies it to (column, row) coordinates after its row/column
    swap; the flips, which IDG applies after the warp, are folded in as mirrors of the
    output columns and rows, so one warp does everything. float64 as in IDG.

    Returns:
      float64 tensor (batch, 3, 3).
    """
    height, width = image_size
    p = {k: xp.cast(xp.convert_to_tensor(params[k]), "float64") for k in GEOMETRY_KEYS}
    theta, shear = p["theta"] * (math.pi / 180), p["shear"] * (math.pi / 180)
    zero, one = xp.zeros_like(theta), xp.ones_like(theta)
    # IDG's centring: the first (column) coordinate is offset by the HEIGHT's centre and
    # the second (row) by the width's; the same as the true centre for square images.
    o_col, o_row = zero + (height / 2 - 0.5), zero + (width / 2 - 0.5)
    flip_h, flip_v = p["flip_horizontal"], p["flip_vertical"]
    chain = [
        _affine(one, zero, o_col, zero, one, o_row, xp),
        _affine(xp.cos(theta), -xp.sin(theta), zero, xp.sin(theta), xp.cos(theta), zero, xp),
        _affine(one, zero, p["tx"], zero, one, p["ty"], xp),
        _affine(one, -xp.sin(shear), zero, zero, xp.cos(shear), zero, xp),
        _affine(p["zx"], zero, zero, zero, p["zy"], zero, xp),
        _affine(one, zero, -o_col, zero, one, -o_row, xp),
        _affine(
            1 - 2 * flip_h,
            zero,
            flip_h * (width - 1),
            zero,
            1 - 2 * flip_v,
            flip_v * (height - 1),
            xp,
        ),
    ]
    matrix = chain[0]
    for step in chain[1:]:
        matrix = xp.matmul(matrix, step)
    return matrix


def _tap(index: Any, size: int, fill_mode: str, xp: Ops) -> Any:
    """The pixel scipy reads for a filter tap just outside [0, size): the edge pixel's
    mirror for "reflect" (-1 reads 0, `size` reads size - 1), its neighbour's for the
    other modes (-1 reads 1, `size` reads size - 2; only taps of weight 0 fall there)."""
    if size <= 1:
        return xp.zeros_like(index)
    if fill_mode == "reflect":
        index = xp.where(index < 0, -index - 1, index)
        return xp.where(index >= size, 2 * size - 1 - index, index)
    index = xp.abs(index)
    return xp.where(index >= size, 2 * size - 2 - index, index)


def _mapped(coordinate: Any, size: int, fill_mode: str, xp: Ops) -> Any:
    """scipy's `map_coordinate`: a source coordinate outside [0, size - 1] brought back
    in by the fill mode; -1 (no pixel: `cval`) for "constant"."""
    if size <= 1:
        return xp.zeros_like(coordinate)
    outside_low, outside_high = coordinate < 0, coordinate > size - 1
    if fill_mode == "constant":
        return xp.where(outside_low | outside_high, -1.0, coordinate)
    if fill_mode == "nearest":
        return xp.clip(coordinate, 0.0, size - 1.0)
    if fill_mode == "reflect":  # half-sample symmetric: d c b a | a b c d | d c b a
        period = 2.0 * size
        low = xp.where(
            coordinate < -period, period * xp.floor(-coordinate / period) + coordinate, coordinate
        )
        low = xp.where(low < -size, low + period, -low - 1)
        high = coordinate - period * xp.floor(coordinate / period)
        high = xp.where(high >= size, period - high - 1, high)
    else:  # "wrap", scipy's own: the last and the first pixel overlap
        period = size - 1.0
        low = coordinate + period * (xp.floor(-coordinate / period) + 1)
        high = coordinate - period * xp.floor(coordinate / period)
    return xp.where(outside_low, low, xp.where(outside_high, high, coordinate))


def _taps(coordinate: Any, size: int, fill_mode: str, order: int, xp: Ops):
    """The source pixels one axis of scipy's interpolation reads at `coordinate`:
    (first index, second index, weight of the second, outside), where `outside` marks
    the coordinates that take `cval`."""
    if fill_mode == "nearest" and order == 1:  # clamp to the edge
        clamped = xp.clip(coordinate, 0.0, size - 1.0)
        first = xp.floor(clamped)
        weight = clamped - first
        first = xp.cast(first, "int32")
        return first, xp.minimum(first + 1, size - 1), weight, None
    mapped = _mapped(coordinate, size, fill_mode, xp)
    outside = mapped <= -1.0 if fill_mode == "constant" else None
    if order == 0:
        nearest = _tap(xp.cast(xp.floor(mapped + 0.5), "int32"), size, fill_mode, xp)
        return nearest, nearest, xp.zeros_like(mapped), outside
    first = xp.floor(mapped)
    weight = mapped - first
    first = xp.cast(first, "int32")
    return _tap(first, size, fill_mode, xp), _tap(first + 1, size, fill_mode, xp), weight, outside


def warp_gather(
    images: Any,
    matrices: Any,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
    xp: Ops = tensorflow_ops,
) -> Any:
    """scipy's `affine_transform` of each image (all channels at once) from gathers,
    which XLA compiles on any device.

    Each output pixel reads the source at `matrices @ (column, row, 1)` with scipy's
    border rule for `fill_mode` and its spline `order` (1: bilinear, 0: nearest). With
    fill "nearest" and order 1 it equals the stock projective-transform op
    (`ImageProjectiveTransformV3`, which has no XLA kernel) up to float32 rounding of
    the source coordinates (about 1e-3 on 0..255 noise in the tests); the other border
    rules are scipy's own, which that op does not have.
    """
    height, width = images.shape[1], images.shape[2]
    channels = images.shape[3]
    m = xp.cast(xp.reshape(matrices, [-1, 9]), "float32")
    rows, cols = xp.meshgrid(
        xp.arange(height, dtype="float32"), xp.arange(width, dtype="float32"), indexing="ij"
    )

    def coordinate(a: int) -> Any:  # (batch, height, width)
        return m[:, a, None, None] * cols + m[:, a + 1, None, None] * rows + m[:, a + 2, None, None]

    x0, x1, wx, x_out = _taps(coordinate(0), width, fill_mode, order, xp)
    y0, y1, wy, y_out = _taps(coordinate(3), height, fill_mode, order, xp)
    wx, wy = wx[..., None], wy[..., None]
    pixels = xp.reshape(images, [-1, channels])
    base = xp.arange(xp.shape(images)[0])[:, None, None] * (height * width)

    def at(yy: Any, xx: Any) -> Any:
        return xp.take(pixels, base + yy * width + xx, axis=0)

    if order == 0:
        warped = at(y0, x0)
    else:
        top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
        bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
        warped = top * (1 - wy) + bottom * wy
    if x_out is None:
        return warped
    return xp.where((x_out | y_out)[..., None], xp.cast(cval, warped.dtype), warped)


def warp(
    images: Any,
    matrices: Any,
    fill_mode: str = "nearest",
    *,
    gather: bool = False,
    cval: float = 0.0,
    order: int = 1,
    xp: Ops = tensorflow_ops,
) -> Any:
    """Resamples each image once at `matrices @ (column, row, 1)`, as scipy does for IDG.

    `gather=True` uses `warp_gather`, which XLA compiles and which is 4x faster
    compiled; otherwise, for IDG's defaults (fill "nearest", bilinear), the stock
    projective-transform op, which is faster than uncompiled gathers but has no XLA
    kernel. The other fill modes and order 0 are scipy's own rules: always gathers.
    """
    if gather or fill_mode != "nearest" or order != 1 or xp is not tensorflow_ops:
        return warp_gather(images, matrices, fill_mode, cval, order, xp)
    flat = xp.reshape(matrices, [-1, 9])[:, :8] / matrices[:, 2:3, 2]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=xp.cast(flat, "float32"),
        output_shape=xp.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode.upper(),
    )


def _per_image(values: Any, like: Any, xp: Ops) -> Any:
    """(batch,) values as (batch, 1, 1, 1) in the dtype of `like`."""
    return xp.cast(values, like.dtype)[:, None, None, None]


def shift_channels(images: Any, intensity: Any, xp: Ops = tensorflow_ops) -> Any:
    """IDG's channel shift: every channel plus the image's intensity, clipped to the
    image's own range (its minimum and maximum over all channels)."""
    low = xp.min(images, axis=(1, 2, 3), keepdims=True)
    high = xp.max(images, axis=(1, 2, 3), keepdims=True)
    return xp.clip(images + _per_image(intensity, images, xp), low, high)


def shift_brightness(
    images: Any, brightness: Any, *, scale: bool = False, xp: Ops = tensorflow_ops
) -> Any:
    """IDG's brightness shift, through PIL as IDG takes it: the image as 8-bit pixels
    (truncated; first stretched to 0..255 when it leaves that range, and stretched back
    after), each colour channel times the factor in float32, truncated and clipped to
    0..255 (PIL's `ImageEnhance.Brightness`); an alpha channel passes unchanged. With
    `scale` (IDG's `apply_brightness_shift` default), always stretched, never back."""
    low = xp.min(images, axis=(1, 2, 3), keepdims=True)
    high = xp.max(images, axis=(1, 2, 3), keepdims=True)
    outside = (low < 0) | (high > 255)
    stretch = outside | scale
    span = high - low
    stretched = (images - low) / xp.where(span != 0, span, 1.0) * 255
    pixels = xp.floor(xp.where(stretch, stretched, images))
    colour = pixels[..., :3] if images.shape[-1] == 4 else pixels
    factor = _per_image(brightness, images, xp)
    brightened = xp.floor(xp.clip(factor * colour, 0.0, 255.0))
    if images.shape[-1] == 4:
        brightened = xp.concatenate([brightened, pixels[..., 3:]], axis=-1)
    return xp.where(outside & (not scale), brightened / 255 * span + low, brightened)
