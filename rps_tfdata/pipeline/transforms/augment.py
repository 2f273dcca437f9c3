"""`IDGAugmentation`: ImageDataGenerator's random augmentation as one Keras layer.

IDG draws, per image, a rotation, a shift, a shear (in degrees), an independent zoom on
each axis and the flips, resamples once with scipy (bilinear by default), then shifts
the channels and the brightness. A chain of Keras' stock layers resamples once per layer
(blurrier, other borders) and costs a pass each; this layer composes the same parameters
into one matrix per image and warps once, with scipy's border rules (the arithmetic is
`warp`'s), so its output equals IDG's `apply_transform` up to float rounding.

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

from rps_tfdata.pipeline.transforms import tensorflow_ops
from rps_tfdata.pipeline.transforms.draws import float_dtype, seeds_per_image, unit_uniforms
from rps_tfdata.pipeline.transforms.warp import (
    GEOMETRY_KEYS,
    Params,
    check_resampling,
    compose_matrices,
    shift_brightness,
    shift_channels,
    warp,
)

# IDG's keys of `get_random_transform`; the last two only when their range is set.
PARAMETER_KEYS = (*GEOMETRY_KEYS, "channel_shift_intensity", "brightness")
# Column of each random number in a row of `unit_uniforms`; a column never moves, so a
# setting added later leaves every earlier draw as it was.
_DRAW = {key: i for i, key in enumerate(PARAMETER_KEYS)} | {"tx_sign": 10, "ty_sign": 11}

ShiftRange = Union[float, int, Sequence[float]]
Ops = Any  # an ops namespace: `keras.ops`, or `tensorflow_ops`


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
            "brightness_range should be tuple or list of two floats. "
            f"Received: brightness_range={value!r}"
        )
    low, high = (_number("brightness_range", v) for v in value)
    return low, high


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
    tf.data map (host) as in a train step (device). On jax and torch the layer runs
    with the backend's ops (`keras.ops`), compiled with the model's step; the same
    seed draws the same parameters on every backend.

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
        check_resampling(fill_mode, interpolation_order)
        self.fill_mode = fill_mode
        self.cval = _number("cval", cval)
        self.horizontal_flip = bool(horizontal_flip)
        self.vertical_flip = bool(vertical_flip)
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

    def _shift(self, draws, key: str, choices, shift_range, size: int, xp: Ops) -> Any:
        """IDG's shift in pixels: a uniform draw in [-range, range], or one of the
        choices with a random sign; a fraction of `size` when every value is below 1."""
        if choices is None:
            limit = float(shift_range)
            limit = limit * size if limit < 1 else limit
            return -limit + (limit - -limit) * draws[:, _DRAW[key]]
        dtype = float_dtype(xp)
        values = xp.convert_to_tensor(choices, dtype)
        pick = xp.cast(xp.floor(draws[:, _DRAW[key]] * len(choices)), "int32")
        sign = xp.where(draws[:, _DRAW[f"{key}_sign"]] < 0.5, -1.0, 1.0)
        sign = xp.cast(sign, dtype)
        scale = size if max(choices) < 1 else 1
        return xp.take(values, xp.minimum(pick, len(choices) - 1), axis=0) * sign * scale

    def get_random_transformation(
        self,
        batch_size: Any,
        image_size: tuple[int, int],
        seed: Any,
        xp: Ops = tensorflow_ops,
    ) -> Params:
        """Draws IDG's parameters for `batch_size` images.

        Args:
          batch_size: how many images.
          image_size: their (height, width), which fractional shifts scale by.
          seed: a (batch_size, 2) int tensor, one stateless seed per image (an image's
            parameters then depend on its own seed only, not on its batch), or one (2,)
            seed from which the per-image seeds are derived.
          xp: the ops to draw with: TensorFlow's (`tensorflow_ops`), or `keras.ops`.

        Returns:
          A dict with IDG's keys, each a float64 tensor (batch_size,) in IDG's units:
          degrees for `theta` and `shear`, pixels for `tx` and `ty`, 0/1 for the flips;
          `channel_shift_intensity` and `brightness` only when their range is set.
        """
        height, width = image_size
        if xp is tensorflow_ops:
            seed = tf.cast(seed, tf.int64)
        seeds = seed if len(seed.shape) == 2 else seeds_per_image(seed, batch_size, xp)
        draws = unit_uniforms(seeds, len(_DRAW), xp)

        def uniform(key: str, low: float, high: float) -> Any:
            return low + (high - low) * draws[:, _DRAW[key]]

        def flip(key: str, on: bool) -> Any:
            return xp.cast(uniform(key, 0.0, 1.0) < 0.5, float_dtype(xp)) * float(on)

        r, s = abs(self.rotation_range), abs(self.shear_range)
        shifts = (
            (self._height_choices, self.height_shift_range, height),
            (
                self._width_choices,
                self.width_shift_range,
                width,
            ),
        )
        params = {
            "theta": uniform("theta", -r, r),
            "tx": self._shift(draws, "tx", *shifts[0], xp),
            "ty": self._shift(draws, "ty", *shifts[1], xp),
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
        self,
        images: Any,
        transformation: Params,
        *,
        warp_anyway: bool = False,
        dtype: Optional[str] = None,
        xp: Ops = tensorflow_ops,
    ) -> Any:
        """Applies given parameters (see `get_random_transformation`) deterministically,
        in IDG's order: the warp (flips folded in), the channel shift, the brightness.
        Parameters missing or None are not applied, as in IDG's `apply_transform`. The
        warp is skipped when the layer has no geometric setting (its draws are then the
        identity), unless `warp_anyway` (parameters that come from elsewhere). The result
        is in `dtype`, by default the images' own."""
        images = xp.convert_to_tensor(images)
        size = (images.shape[1], images.shape[2])
        if None in size:
            raise ValueError(
                f"IDGAugmentation needs a static image size. Received shape {images.shape}"
            )
        out = xp.cast(images, "float32")
        if self.warps or warp_anyway:
            zeros = xp.zeros((xp.shape(images)[0],), float_dtype(xp))
            absent = {key: 1.0 if key in ("zx", "zy") else 0.0 for key in GEOMETRY_KEYS}
            geometry = {k: transformation.get(k, zeros + absent[k]) for k in GEOMETRY_KEYS}
            out = warp(
                out,
                compose_matrices(geometry, size, xp),
                self.fill_mode,
                gather=self.jit_compile,
                cval=self.cval,
                order=self.interpolation_order,
                xp=xp,
            )
        if transformation.get("channel_shift_intensity") is not None:
            out = shift_channels(out, transformation["channel_shift_intensity"], xp)
        if transformation.get("brightness") is not None:
            out = shift_brightness(out, transformation["brightness"], xp=xp)
        return xp.cast(out, dtype or images.dtype)

    def sample_parameters(
        self, batch_size: int, image_size: tuple[int, int] = (150, 150), seed: Optional[int] = None
    ) -> dict[str, np.ndarray]:
        """Draws parameters for `batch_size` images as NumPy arrays with IDG's keys and units.

        The same sampler the layer uses when it augments; a fixed `seed` repeats the draw.
        """
        if seed is None:
            seed_pair = tf.cast(keras.ops.convert_to_numpy(self._seed_generator.next()), tf.int64)
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

    def _augment_batch(
        self, images: Any, seed: Any, xp: Ops = tensorflow_ops, dtype: Optional[str] = None
    ) -> Any:
        size = (images.shape[1], images.shape[2])
        params = self.get_random_transformation(xp.shape(images)[0], size, seed, xp)
        return self.transform_images(images, params, dtype=dtype, xp=xp)

    def augment_batch(self, images: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
        """Augments a batch of pixels on IDG's 0..255 scale, uint8 or float, with one
        stateless seed per image ((batch, 2) ints), in TensorFlow whatever Keras' backend:
        what a tf.data pipeline calls, where Keras' layer call would convert the batch to
        the backend's arrays. float32 out. Hand it the cache's uint8 pixels: compiled, the
        cast to float fuses into the warp's reads, which then read a byte a channel (about
        twice as fast as reading float32 pixels, the same bits)."""
        return self._augment(images, tf.cast(seeds, tf.int64), dtype="float32")

    def call(self, inputs: Any, training: Optional[bool] = None, seed: Optional[Any] = None):
        # Augments only when training (`fit`, or training=True): a model exported with
        # `model.export()`, which calls it without saying, serves unaugmented images.
        if not training:
            return inputs
        if seed is None:
            seed = self._seed_generator.next()
        if keras.backend.backend() == "tensorflow":  # compiled once per config (`_compiled`)
            return self._augment(inputs, tf.cast(seed, tf.int64))
        return self._augment_batch(inputs, seed, keras.ops)  # compiled with the model

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
