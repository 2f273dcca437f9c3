"""IDG's functions of one image, on the library's kernel: `apply_affine_transform`, the
channel and brightness shifts, and the `random_*` functions that draw their parameters.

Each takes and returns a NumPy image (3-D, the axes given as IDG's `row_axis`,
`col_axis`, `channel_axis`, channels first by default, as in Keras). The arithmetic is
the library's (`warp`): one resampling with scipy's border rules, equal to IDG's to
float rounding (the warp computes in float32 where scipy keeps float64); the result has
the input's dtype. The `random_*` functions draw from NumPy's global generator with
IDG's calls, so `np.random.seed` repeats IDG's draws.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from rps_tfdata.pipeline.transforms import warp


def apply_affine_transform(
    x: np.ndarray,
    theta: float = 0,
    tx: float = 0,
    ty: float = 0,
    shear: float = 0,
    zx: float = 1,
    zy: float = 1,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
) -> np.ndarray:
    """IDG's `apply_affine_transform`: rotation `theta` and shear in degrees, shifts
    `tx` (along the rows' axis) and `ty` in pixels, zooms `zx`, `zy`, about the centre;
    the image unchanged when they are all the identity.

    Raises:
      ValueError: IDG's refusals (axes, rank, channel axis), an unknown `fill_mode`, or
        an `order` other than 0 and 1.
    """
    _check_axes(x, row_axis, col_axis, channel_axis)
    warp.check_resampling(fill_mode, order)
    if (theta, tx, ty, shear, zx, zy) == (0, 0, 0, 0, 1, 1):
        return x
    axes = (row_axis, col_axis, channel_axis)
    image = np.moveaxis(np.asarray(x), axes, (0, 1, 2)).astype(np.float32)
    drawn = dict(theta=theta, tx=tx, ty=ty, shear=shear, zx=zx, zy=zy)
    geometry = {key: [float(drawn.get(key, 0))] for key in warp.GEOMETRY_KEYS}
    matrices = warp.compose_matrices(geometry, image.shape[:2])
    out = warp.warp(image[None], matrices, fill_mode, gather=True, cval=cval, order=order)
    return np.moveaxis(out[0].numpy(), (0, 1, 2), axes).astype(np.asarray(x).dtype)


def apply_channel_shift(x: np.ndarray, intensity: float, channel_axis: int = 0) -> np.ndarray:
    """IDG's `apply_channel_shift`: every channel plus `intensity`, clipped to the
    image's own range."""
    image = np.moveaxis(np.asarray(x), channel_axis, -1)
    image = image.astype(np.result_type(image.dtype, 1.0))  # NumPy's: x + a float
    shifted = warp.shift_channels(tf.constant(image[None]), tf.constant([intensity]))
    return np.moveaxis(shifted[0].numpy(), -1, channel_axis)


def apply_brightness_shift(x: np.ndarray, brightness: float, scale: bool = True) -> np.ndarray:
    """IDG's `apply_brightness_shift`, channels last: through PIL's 8-bit brightness
    enhance, the image first stretched to 0..255 when `scale` (or when it leaves that
    range; then, without `scale`, stretched back)."""
    image = tf.constant(np.asarray(x, np.float32)[None])
    shifted = warp.shift_brightness(image, tf.constant([brightness]), scale=scale)
    return shifted[0].numpy()


def random_rotation(
    x: np.ndarray,
    rg: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """IDG's `random_rotation`: a rotation drawn in [-rg, rg] degrees."""
    theta = np.random.uniform(-rg, rg)
    axes = dict(row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis)
    return apply_affine_transform(
        x, theta=theta, **axes, fill_mode=fill_mode, cval=cval, order=interpolation_order
    )


def random_shift(
    x: np.ndarray,
    wrg: float,
    hrg: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """IDG's `random_shift`: shifts drawn as fractions `hrg` of the height and `wrg` of
    the width."""
    height, width = np.shape(x)[row_axis], np.shape(x)[col_axis]
    tx = np.random.uniform(-hrg, hrg) * height
    ty = np.random.uniform(-wrg, wrg) * width
    axes = dict(row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis)
    return apply_affine_transform(
        x, tx=tx, ty=ty, **axes, fill_mode=fill_mode, cval=cval, order=interpolation_order
    )


def random_shear(
    x: np.ndarray,
    intensity: float,
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """IDG's `random_shear`: a shear drawn in [-intensity, intensity] degrees."""
    shear = np.random.uniform(-intensity, intensity)
    axes = dict(row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis)
    return apply_affine_transform(
        x, shear=shear, **axes, fill_mode=fill_mode, cval=cval, order=interpolation_order
    )


def random_zoom(
    x: np.ndarray,
    zoom_range: Sequence[float],
    row_axis: int = 1,
    col_axis: int = 2,
    channel_axis: int = 0,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    interpolation_order: int = 1,
) -> np.ndarray:
    """IDG's `random_zoom`: each axis's zoom drawn in `zoom_range`.

    Raises:
      ValueError: `zoom_range` is not two numbers (IDG's message).
    """
    if len(zoom_range) != 2:
        raise ValueError(
            f"`zoom_range` should be a tuple or list of two floats. Received: {zoom_range}"
        )
    if zoom_range[0] == 1 and zoom_range[1] == 1:
        zx, zy = 1, 1
    else:
        zx, zy = np.random.uniform(zoom_range[0], zoom_range[1], 2)
    axes = dict(row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis)
    return apply_affine_transform(
        x, zx=zx, zy=zy, **axes, fill_mode=fill_mode, cval=cval, order=interpolation_order
    )


def random_channel_shift(
    x: np.ndarray, intensity_range: float, channel_axis: int = 0
) -> np.ndarray:
    """IDG's `random_channel_shift`: an intensity drawn in [-range, range]."""
    intensity = np.random.uniform(-intensity_range, intensity_range)
    return apply_channel_shift(x, intensity, channel_axis=channel_axis)


def random_brightness(
    x: np.ndarray, brightness_range: Sequence[float], scale: bool = True
) -> np.ndarray:
    """IDG's `random_brightness`: a factor drawn in `brightness_range`.

    Raises:
      ValueError: `brightness_range` is not two numbers (IDG's message).
    """
    if len(brightness_range) != 2:
        raise ValueError(
            f"`brightness_range should be tuple or list of two floats. Received: {brightness_range}"
        )
    factor = np.random.uniform(brightness_range[0], brightness_range[1])
    return apply_brightness_shift(x, factor, scale)


def _check_axes(x: np.ndarray, row_axis: int, col_axis: int, channel_axis: int) -> None:
    """IDG's refusals of an image and its axes, with IDG's messages."""
    if len({row_axis, col_axis, channel_axis}) != 3:
        raise ValueError("'row_axis', 'col_axis', and 'channel_axis' must be distinct")
    unknown = {row_axis, col_axis, channel_axis} - {0, 1, 2}
    if unknown:
        raise ValueError(f"Invalid axis' indices: {unknown}")
    if np.ndim(x) != 3:
        raise ValueError("Input arrays must be multi-channel 2D images.")
    if channel_axis not in (0, 2):
        raise ValueError("Channels are allowed and the first and last dimensions.")
