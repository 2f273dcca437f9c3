"""`IDGAugmentation`: ImageDataGenerator's random augmentation as one Keras layer.

IDG draws, per image, a rotation, a shift, a shear (in degrees), an independent zoom on
each axis and the flips, resamples once with scipy (bilinear by default), then shifts
the channels and the brightness. A chain of Keras' stock layers resamples once per layer
(blurrier, other borders) and costs a pass each; this layer composes the same parameters
into one matrix per image and warps once, with scipy's border rules, so its output equals
IDG's `apply_transform` up to float rounding.

As in Keras' own preprocessing layers, randomness and arithmetic are separate:
`get_random_transformation` draws every random number, `transform_images` is
deterministic. Images are float on IDG's 0..255 scale, shape (batch, height, width, C).
"""

import json
import math
from typing import Any, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

FILL_MODES = ("nearest", "constant", "reflect", "wrap")
# scipy's spline orders that one warp reproduces: 0 (nearest) and 1 (bilinear, IDG's default).
INTERPOLATION_ORDERS = (0, 1)
GEOMETRY_KEYS = ("theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical")
# IDG's keys of `get_random_transform`; the last two only when their range is set.
PARAMETER_KEYS = (*GEOMETRY_KEYS, "channel_shift_intensity", "brightness")
# The seed script's augmentation: the trainer's `--augment=idg`.
SEED_AUGMENTATION = dict(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
)
# Column of each random number in a row of `_unit_uniforms`; a column never moves, so a
# setting added later leaves every earlier draw as it was.
_DRAW = {key: i for i, key in enumerate(PARAMETER_KEYS)} | {"tx_sign": 10, "ty_sign": 11}

Params = dict[str, Any]
ShiftRange = Union[float, int, Sequence[float]]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number. Received: {name}={value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite. Received: {name}={value!r}")
    return float(value)


def _zoom_bounds(zoom_range: Union[float, Sequence[float]]) -> tuple[float, float]:
    """IDG's reading of `zoom_range`: a number z means [1 - z, 1 + z], a pair is [low, high]."""
    if isinstance(zoom_range, (int, float, np.number)) and not isinstance(zoom_range, bool):
        z = _number("zoom_range", zoom_range)
        return 1 - z, 1 + z
    if isinstance(zoom_range, (list, tuple, np.ndarray)) and len(zoom_range) == 2:
        low, high = (_number("zoom_range", v) for v in zoom_range)
        return low, high
    raise ValueError(
        f"zoom_range must be a number or a pair (low, high). Received: zoom_range={zoom_range!r}"
    )


def _shift_choices(name: str, value: ShiftRange) -> Optional[tuple[float, ...]]:
    """IDG's reading of a shift range: None for a float (a uniform draw in [-v, v]); the
    values drawn from, each with a random sign, for an int N (0..N-1) or a list."""
    if isinstance(value, bool):
        raise ValueError(
            f"{name} must be a number or a list of numbers. Received: {name}={value!r}"
        )
    if isinstance(value, (int, np.integer)):
        return tuple(float(v) for v in range(int(value))) or None
    if isinstance(value, (float, np.floating)):
        _number(name, value)
        return None
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0:
        return tuple(_number(name, v) for v in np.ravel(value))
    raise ValueError(f"{name} must be a number or a list of numbers. Received: {name}={value!r}")


def _as_list(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _brightness(value: Optional[Sequence[float]]) -> Optional[tuple[float, float]]:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(
            "brightness_range should be tuple or list of two floats (IDG's words). "
            f"Received: brightness_range={value!r}"
        )
    low, high = (_number("brightness_range", v) for v in value)
    return low, high


def _affine(a, b, c, d, e, f) -> tf.Tensor:
    """Batch of 3x3 matrices [[a, b, c], [d, e, f], [0, 0, 1]] from (batch,) tensors."""
    zero = tf.zeros_like(a)
    entries = tf.stack([a, b, c, d, e, f, zero, zero, zero + 1], axis=-1)
    return tf.reshape(entries, [-1, 3, 3])


def _mix32(x: tf.Tensor) -> tf.Tensor:
    """MurmurHash3's 32-bit finalizer: every input bit flips each output bit with
    probability near 1/2. uint32 arithmetic wraps alike in graph kernels and XLA."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x85EBCA6B, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 13))
    x = x * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def _unit_uniforms(seeds: tf.Tensor, count: int) -> tf.Tensor:
    """(batch, count) uniform float64 in [0, 1): row i a hash of its own seed `seeds[i]`.

    A counter-based draw built from integer operations only, vectorised over the batch:
    each value hashes the seed's four 32-bit words and a counter, twice, for 53 bits.
    Integer results are bit-identical between the tf.data (host) path and an
    XLA-compiled train step (device), which TensorFlow's own float draws are not.
    """
    seeds = tf.cast(seeds, tf.int64)
    words = [
        tf.cast(
            tf.bitwise.bitwise_and(
                tf.bitwise.right_shift(seeds[:, k // 2], 32 * (k % 2)), 0xFFFFFFFF
            ),
            tf.uint32,
        )
        for k in range(4)
    ]
    counters = tf.constant([(k * 0x9E3779B9) & 0xFFFFFFFF for k in range(2 * count)], tf.uint32)
    bits = _mix32(counters[None, :] + tf.constant(0x6A09E667, tf.uint32))
    for word in words:
        bits = _mix32(tf.bitwise.bitwise_xor(bits, word[:, None]))
    high = tf.cast(bits[:, 0::2], tf.float64)
    low = tf.cast(tf.bitwise.right_shift(bits[:, 1::2], 11), tf.float64)
    return (high * 2.0**21 + low) * 2.0**-53


def seeds_per_image(seed: tf.Tensor, batch_size: Union[int, tf.Tensor]) -> tf.Tensor:
    """(batch_size, 2) per-image seeds derived from one stateless (2,) seed."""
    return tf.random.stateless_uniform(
        [batch_size, 2], tf.cast(seed, tf.int64), minval=None, maxval=None, dtype=tf.int64
    )


def compose_matrices(params: Params, image_size: tuple[int, int]) -> tf.Tensor:
    """Composes IDG's per-image matrices, mapping output to input pixel coordinates.

    IDG builds `O R T Sh Z O^-1` (with `O` a translation by `height/2 - 0.5`,
    `width/2 - 0.5`) and applies it to (column, row) coordinates after its row/column
    swap; the flips, which IDG applies after the warp, are folded in as mirrors of the
    output columns and rows, so one warp does everything. float64 as in IDG.

    Returns:
      float64 tensor (batch, 3, 3).
    """
    height, width = image_size
    p = {k: tf.cast(tf.convert_to_tensor(params[k]), tf.float64) for k in GEOMETRY_KEYS}
    theta, shear = p["theta"] * (math.pi / 180), p["shear"] * (math.pi / 180)
    zero, one = tf.zeros_like(theta), tf.ones_like(theta)
    # IDG's centring: the first (column) coordinate is offset by the HEIGHT's centre and
    # the second (row) by the width's; the same as the true centre for square images.
    o_col, o_row = zero + (height / 2 - 0.5), zero + (width / 2 - 0.5)
    flip_h, flip_v = p["flip_horizontal"], p["flip_vertical"]
    chain = [
        _affine(one, zero, o_col, zero, one, o_row),
        _affine(tf.cos(theta), -tf.sin(theta), zero, tf.sin(theta), tf.cos(theta), zero),
        _affine(one, zero, p["tx"], zero, one, p["ty"]),
        _affine(one, -tf.sin(shear), zero, zero, tf.cos(shear), zero),
        _affine(p["zx"], zero, zero, zero, p["zy"], zero),
        _affine(one, zero, -o_col, zero, one, -o_row),
        _affine(
            1 - 2 * flip_h, zero, flip_h * (width - 1), zero, 1 - 2 * flip_v, flip_v * (height - 1)
        ),
    ]
    matrix = chain[0]
    for step in chain[1:]:
        matrix = tf.matmul(matrix, step)
    return matrix


def _tap(index: tf.Tensor, size: int, fill_mode: str) -> tf.Tensor:
    """The pixel scipy reads for a filter tap just outside [0, size): the edge pixel's
    mirror for "reflect" (-1 reads 0, `size` reads size - 1), its neighbour's for the
    other modes (-1 reads 1, `size` reads size - 2; only taps of weight 0 fall there)."""
    if size <= 1:
        return tf.zeros_like(index)
    if fill_mode == "reflect":
        index = tf.where(index < 0, -index - 1, index)
        return tf.where(index >= size, 2 * size - 1 - index, index)
    index = tf.abs(index)
    return tf.where(index >= size, 2 * size - 2 - index, index)


def _mapped(coordinate: tf.Tensor, size: int, fill_mode: str) -> tf.Tensor:
    """scipy's `map_coordinate`: a source coordinate outside [0, size - 1] brought back
    in by the fill mode; -1 (no pixel: `cval`) for "constant"."""
    if size <= 1:
        return tf.zeros_like(coordinate)
    outside_low, outside_high = coordinate < 0, coordinate > size - 1
    if fill_mode == "constant":
        return tf.where(outside_low | outside_high, -1.0, coordinate)
    if fill_mode == "nearest":
        return tf.clip_by_value(coordinate, 0.0, size - 1.0)
    if fill_mode == "reflect":  # half-sample symmetric: d c b a | a b c d | d c b a
        period = 2.0 * size
        low = tf.where(
            coordinate < -period, period * tf.floor(-coordinate / period) + coordinate, coordinate
        )
        low = tf.where(low < -size, low + period, -low - 1)
        high = coordinate - period * tf.floor(coordinate / period)
        high = tf.where(high >= size, period - high - 1, high)
    else:  # "wrap", scipy's own: the last and the first pixel overlap
        period = size - 1.0
        low = coordinate + period * (tf.floor(-coordinate / period) + 1)
        high = coordinate - period * tf.floor(coordinate / period)
    return tf.where(outside_low, low, tf.where(outside_high, high, coordinate))


def _taps(coordinate: tf.Tensor, size: int, fill_mode: str, order: int):
    """The source pixels one axis of scipy's interpolation reads at `coordinate`:
    (first index, second index, weight of the second, outside), where `outside` marks
    the coordinates that take `cval`."""
    if fill_mode == "nearest" and order == 1:  # clamp to the edge
        clamped = tf.clip_by_value(coordinate, 0.0, size - 1.0)
        first = tf.floor(clamped)
        weight = clamped - first
        first = tf.cast(first, tf.int32)
        return first, tf.minimum(first + 1, size - 1), weight, None
    mapped = _mapped(coordinate, size, fill_mode)
    outside = mapped <= -1.0 if fill_mode == "constant" else None
    if order == 0:
        nearest = _tap(tf.cast(tf.floor(mapped + 0.5), tf.int32), size, fill_mode)
        return nearest, nearest, tf.zeros_like(mapped), outside
    first = tf.floor(mapped)
    weight = mapped - first
    first = tf.cast(first, tf.int32)
    return _tap(first, size, fill_mode), _tap(first + 1, size, fill_mode), weight, outside


def warp_gather(
    images: tf.Tensor,
    matrices: tf.Tensor,
    fill_mode: str = "nearest",
    cval: float = 0.0,
    order: int = 1,
) -> tf.Tensor:
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
    m = tf.cast(tf.reshape(matrices, [-1, 9]), tf.float32)
    rows, cols = tf.meshgrid(
        tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij"
    )

    def coordinate(a: int) -> tf.Tensor:  # (batch, height, width)
        return m[:, a, None, None] * cols + m[:, a + 1, None, None] * rows + m[:, a + 2, None, None]

    x0, x1, wx, x_out = _taps(coordinate(0), width, fill_mode, order)
    y0, y1, wy, y_out = _taps(coordinate(3), height, fill_mode, order)
    wx, wy = wx[..., None], wy[..., None]
    pixels = tf.reshape(images, [-1, channels])
    base = tf.range(tf.shape(images)[0])[:, None, None] * (height * width)

    def at(yy: tf.Tensor, xx: tf.Tensor) -> tf.Tensor:
        return tf.gather(pixels, base + yy * width + xx)

    if order == 0:
        warped = at(y0, x0)
    else:
        top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
        bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
        warped = top * (1 - wy) + bottom * wy
    if x_out is None:
        return warped
    return tf.where((x_out | y_out)[..., None], tf.cast(cval, warped.dtype), warped)


def warp(
    images: tf.Tensor,
    matrices: tf.Tensor,
    fill_mode: str = "nearest",
    *,
    gather: bool = False,
    cval: float = 0.0,
    order: int = 1,
) -> tf.Tensor:
    """Resamples each image once at `matrices @ (column, row, 1)`, as scipy does for IDG.

    `gather=True` uses `warp_gather`, which XLA compiles and which is 4x faster
    compiled; otherwise, for IDG's defaults (fill "nearest", bilinear), the stock
    projective-transform op, which is faster than uncompiled gathers but has no XLA
    kernel. The other fill modes and order 0 are scipy's own rules: always gathers.
    """
    if gather or fill_mode != "nearest" or order != 1:
        return warp_gather(images, matrices, fill_mode, cval, order)
    flat = tf.reshape(matrices, [-1, 9])[:, :8] / matrices[:, 2:3, 2]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(flat, tf.float32),
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode.upper(),
    )


def _per_image(values: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """(batch,) values as (batch, 1, 1, 1) in the dtype of `like`."""
    return tf.cast(values, like.dtype)[:, None, None, None]


def shift_channels(images: tf.Tensor, intensity: tf.Tensor) -> tf.Tensor:
    """IDG's channel shift: every channel plus the image's intensity, clipped to the
    image's own range (its minimum and maximum over all channels)."""
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(images + _per_image(intensity, images), low, high)


def shift_brightness(images: tf.Tensor, brightness: tf.Tensor) -> tf.Tensor:
    """IDG's brightness shift, through PIL as IDG takes it: the image as 8-bit pixels
    (truncated; first stretched to 0..255 when it leaves that range, and stretched back
    after), each colour channel times the factor in float32, truncated and clipped to
    0..255 (PIL's `ImageEnhance.Brightness`); an alpha channel passes unchanged."""
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    stretch = (low < 0) | (high > 255)
    span = high - low
    stretched = (images - low) / tf.where(span != 0, span, 1.0) * 255
    pixels = tf.floor(tf.where(stretch, stretched, images))
    colour = pixels[..., :3] if images.shape[-1] == 4 else pixels
    factor = _per_image(brightness, images)
    brightened = tf.floor(tf.clip_by_value(factor * colour, 0.0, 255.0))
    if images.shape[-1] == 4:
        brightened = tf.concat([brightened, pixels[..., 3:]], axis=-1)
    return tf.where(stretch, brightened / 255 * span + low, brightened)


# One compiled batch augmentation per settings in this process (`_compiled`).
_COMPILED: dict[str, tf.types.experimental.PolymorphicFunction] = {}


def _compiled(layer: "IDGAugmentation") -> tf.types.experimental.PolymorphicFunction:
    """The layer's batch augmentation as a tf.function shared by every layer of the same
    config in the process: the next run in a process (a benchmark's second pipeline, a
    test) reuses its traces and its XLA compilation. The key is the layer's whole config
    but its name, so a setting added later can never share another's function; the
    function never uses the layer's own seed generator (the seeds are its argument)."""
    config = {k: v for k, v in layer.get_config().items() if k != "name"}
    key = json.dumps(config, sort_keys=True, default=repr)
    if key not in _COMPILED:
        # No autograph: the code holds no Python control flow on tensors, and converting
        # it costs a few tenths of a second of every process's first read.
        _COMPILED[key] = tf.function(
            layer._augment_batch, jit_compile=layer.jit_compile, autograph=False
        )
    return _COMPILED[key]


@keras.saving.register_keras_serializable(package="rps_tfdata")
class IDGAugmentation(keras.layers.Layer):
    """ImageDataGenerator's random augmentation, fused into one warp per image.

    The keywords, their defaults and their readings are `ImageDataGenerator`'s:
    `rotation_range` and `shear_range` in degrees; a shift range that is a float below 1
    is a fraction of the size (IDG multiplies `height_shift_range` by the height and
    applies it along the columns, and `width_shift_range` by the width along the rows:
    equal for square images), a float of 1 or more is pixels, an int N draws 0..N-1
    pixels and a list draws one of its values, each with a random sign; `zoom_range` z
    samples each axis independently from [1 - z, 1 + z] (a pair: from [low, high]);
    `fill_mode` and `cval` are scipy's border rules; `interpolation_order` 1 is
    bilinear, 0 nearest; `channel_shift_range` and `brightness_range` follow the warp.

    Call it on float images on the 0..255 scale; it augments only when training (inside
    `model.fit`, or called with `training=True`), and is the identity otherwise (predict,
    evaluate, a model served after `model.export()`). `seed` makes the layer's own draws
    reproducible; `call(..., seed=...)` with a (2,) int tensor, or a (batch, 2) one with
    a seed per image, makes one call stateless (the training pipeline passes a seed per
    image and epoch).
    `jit_compile` (default on) compiles each batch's augmentation with XLA, in a
    tf.data map (host) as in a train step (device).

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((150, 150, 3)),
        IDGAugmentation(rotation_range=40, zoom_range=0.2, horizontal_flip=True),
        keras.layers.Rescaling(1 / 255),
        ...
    ])
    ```
    """

    def __init__(
        self,
        rotation_range: float = 0,
        width_shift_range: ShiftRange = 0.0,
        height_shift_range: ShiftRange = 0.0,
        brightness_range: Optional[Sequence[float]] = None,
        shear_range: float = 0.0,
        zoom_range: Union[float, Sequence[float]] = 0.0,
        channel_shift_range: float = 0.0,
        fill_mode: str = "nearest",
        cval: float = 0.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        interpolation_order: int = 1,
        seed: Optional[int] = None,
        jit_compile: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rotation_range = _number("rotation_range", rotation_range)
        # Lists, not arrays, in the config (a .keras file holds it as JSON).
        self.width_shift_range = _as_list(width_shift_range)
        self.height_shift_range = _as_list(height_shift_range)
        self._width_choices = _shift_choices("width_shift_range", width_shift_range)
        self._height_choices = _shift_choices("height_shift_range", height_shift_range)
        self.brightness_range = _brightness(brightness_range)
        self.shear_range = _number("shear_range", shear_range)
        self.zoom_range = zoom_range
        self._zoom_low, self._zoom_high = _zoom_bounds(zoom_range)
        self.channel_shift_range = _number("channel_shift_range", channel_shift_range)
        if fill_mode not in FILL_MODES:
            raise ValueError(
                f"fill_mode must be one of {FILL_MODES}. Received: fill_mode={fill_mode!r}"
            )
        self.fill_mode = fill_mode
        self.cval = _number("cval", cval)
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
        if interpolation_order not in INTERPOLATION_ORDERS:
            raise ValueError(
                "interpolation_order must be 0 (nearest) or 1 (bilinear): scipy's spline "
                "orders 2-5 filter the whole image first, which one warp cannot reproduce. "
                f"Received: interpolation_order={interpolation_order!r}"
            )
        self.interpolation_order = int(interpolation_order)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)
        # One XLA cluster for sampling, composing and warping a batch: about 4x faster
        # than the stock op on a CPU, and the same code in a tf.data map or a train step.
        self.jit_compile = bool(jit_compile)
        self._augment = _compiled(self)

    @property
    def zoom_bounds(self) -> tuple[float, float]:
        """The zoom each axis draws from, [low, high] (IDG's reading of `zoom_range`)."""
        return self._zoom_low, self._zoom_high

    @property
    def warps(self) -> bool:
        """Whether any geometric setting is on (else the images are never resampled)."""
        shifts = (self.width_shift_range, self.height_shift_range)
        return bool(
            self.rotation_range
            or any(np.any(np.asarray(s, dtype=float) != 0) for s in shifts)
            or self.shear_range
            or (self._zoom_low, self._zoom_high) != (1.0, 1.0)
            or self.horizontal_flip
            or self.vertical_flip
        )

    def _shift(self, draws, key: str, choices, shift_range, size: int) -> tf.Tensor:
        """IDG's shift in pixels: a uniform draw in [-range, range], or one of the
        choices with a random sign; a fraction of `size` when every value is below 1."""
        if choices is None:
            limit = float(shift_range)
            limit = limit * size if limit < 1 else limit
            return -limit + (limit - -limit) * draws[:, _DRAW[key]]
        values = tf.constant(choices, tf.float64)
        pick = tf.cast(tf.floor(draws[:, _DRAW[key]] * len(choices)), tf.int32)
        sign = tf.where(draws[:, _DRAW[f"{key}_sign"]] < 0.5, -1.0, 1.0)
        sign = tf.cast(sign, tf.float64)
        scale = size if max(choices) < 1 else 1
        return tf.gather(values, tf.minimum(pick, len(choices) - 1)) * sign * scale

    def get_random_transformation(
        self, batch_size: Union[int, tf.Tensor], image_size: tuple[int, int], seed: tf.Tensor
    ) -> Params:
        """Draws IDG's parameters for `batch_size` images.

        Args:
          batch_size: how many images.
          image_size: their (height, width), which fractional shifts scale by.
          seed: a (batch_size, 2) int tensor, one stateless seed per image (an image's
            parameters then depend on its own seed only, not on its batch), or one (2,)
            seed from which the per-image seeds are derived.

        Returns:
          A dict with IDG's keys, each a float64 tensor (batch_size,) in IDG's units:
          degrees for `theta` and `shear`, pixels for `tx` and `ty`, 0/1 for the flips;
          `channel_shift_intensity` and `brightness` only when their range is set.
        """
        height, width = image_size
        seed = tf.cast(seed, tf.int64)
        seeds = seed if seed.shape.rank == 2 else seeds_per_image(seed, batch_size)
        draws = _unit_uniforms(seeds, len(_DRAW))

        def uniform(key: str, low: float, high: float) -> tf.Tensor:
            return low + (high - low) * draws[:, _DRAW[key]]

        def flip(key: str, on: bool) -> tf.Tensor:
            return tf.cast(uniform(key, 0.0, 1.0) < 0.5, tf.float64) * float(on)

        r, s = abs(self.rotation_range), abs(self.shear_range)
        params = {
            "theta": uniform("theta", -r, r),
            "tx": self._shift(draws, "tx", self._height_choices, self.height_shift_range, height),
            "ty": self._shift(draws, "ty", self._width_choices, self.width_shift_range, width),
            "shear": uniform("shear", -s, s),
            "zx": uniform("zx", self._zoom_low, self._zoom_high),
            "zy": uniform("zy", self._zoom_low, self._zoom_high),
            "flip_horizontal": flip("flip_horizontal", self.horizontal_flip),
            "flip_vertical": flip("flip_vertical", self.vertical_flip),
        }
        if self.channel_shift_range:
            c = abs(self.channel_shift_range)
            params["channel_shift_intensity"] = uniform("channel_shift_intensity", -c, c)
        if self.brightness_range is not None:
            params["brightness"] = uniform("brightness", *self.brightness_range)
        return params

    def transform_images(
        self, images: tf.Tensor, transformation: Params, *, warp_anyway: bool = False
    ) -> tf.Tensor:
        """Applies given parameters (see `get_random_transformation`) deterministically,
        in IDG's order: the warp (flips folded in), the channel shift, the brightness.
        Parameters missing or None are not applied, as in IDG's `apply_transform`. The
        warp is skipped when the layer has no geometric setting (its draws are then the
        identity), unless `warp_anyway` (parameters that come from elsewhere)."""
        images = tf.convert_to_tensor(images)
        size = (images.shape[1], images.shape[2])
        if None in size:
            raise ValueError(
                f"IDGAugmentation needs a static image size. Received shape {images.shape}"
            )
        out = tf.cast(images, tf.float32)
        if self.warps or warp_anyway:
            zeros = tf.zeros(tf.shape(images)[:1], tf.float64)
            absent = {key: 1.0 if key in ("zx", "zy") else 0.0 for key in GEOMETRY_KEYS}
            geometry = {k: transformation.get(k, zeros + absent[k]) for k in GEOMETRY_KEYS}
            out = warp(
                out,
                compose_matrices(geometry, size),
                self.fill_mode,
                gather=self.jit_compile,
                cval=self.cval,
                order=self.interpolation_order,
            )
        if transformation.get("channel_shift_intensity") is not None:
            out = shift_channels(out, transformation["channel_shift_intensity"])
        if transformation.get("brightness") is not None:
            out = shift_brightness(out, transformation["brightness"])
        return tf.cast(out, images.dtype)

    def sample_parameters(
        self, batch_size: int, image_size: tuple[int, int] = (150, 150), seed: Optional[int] = None
    ) -> dict[str, np.ndarray]:
        """Draws parameters for `batch_size` images as NumPy arrays with IDG's keys and units.

        The same sampler the layer uses when it augments; a fixed `seed` repeats the draw.
        """
        if seed is None:
            seed_pair = self._seed_generator.next()
        else:
            seed_pair = tf.constant([seed, 0], tf.int64)
        params = self.get_random_transformation(batch_size, tuple(image_size), seed_pair)
        return {key: value.numpy() for key, value in params.items()}

    def transform(self, images: Any, params: dict[str, Any]) -> np.ndarray:
        """`transform_images` for NumPy callers: float images on 0..255 in, NumPy out; the
        geometry given in `params` is applied whatever the layer's own settings."""
        images = tf.convert_to_tensor(images, tf.float32)
        geometry = any(params.get(key) is not None for key in GEOMETRY_KEYS)
        return self.transform_images(images, params, warp_anyway=geometry).numpy()

    def _augment_batch(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        params = self.get_random_transformation(
            tf.shape(images)[0], (images.shape[1], images.shape[2]), seed
        )
        return self.transform_images(images, params)

    def call(
        self, inputs: tf.Tensor, training: Optional[bool] = None, seed: Optional[tf.Tensor] = None
    ):
        # Augments only when training (`fit`, or training=True): a model exported with
        # `model.export()`, which calls it without saying, serves unaugmented images.
        if not training:
            return inputs
        if seed is None:
            seed = self._seed_generator.next()
        return self._augment(inputs, tf.cast(seed, tf.int64))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            rotation_range=self.rotation_range,
            width_shift_range=self.width_shift_range,
            height_shift_range=self.height_shift_range,
            brightness_range=self.brightness_range,
            shear_range=self.shear_range,
            zoom_range=self.zoom_range,
            channel_shift_range=self.channel_shift_range,
            fill_mode=self.fill_mode,
            cval=self.cval,
            horizontal_flip=self.horizontal_flip,
            vertical_flip=self.vertical_flip,
            interpolation_order=self.interpolation_order,
            seed=self.seed,
            jit_compile=self.jit_compile,
        )
        return config
