"""Reading one image as ImageDataGenerator does: decode to uint8 RGB, resize like PIL.

The training pipeline, evaluation and prediction all read images through `load_image`,
so a model never sees pixels prepared another way than it was trained on.
"""

import functools

import numpy as np
import tensorflow as tf

from rps_tfdata.core.config import CHOICES
from rps_tfdata.core.headers import MAX_IMAGE_PIXELS, SIGNATURES

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
    if method not in CHOICES["resize_method"]:
        methods = CHOICES["resize_method"]
        raise ValueError(f"resize method must be one of {methods}. Received: {method!r}")
    resized = tf.image.resize(image, image_size, method=method)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def _bytes_at(data: tf.Tensor, offsets: list[int], start: tf.Tensor) -> tf.Tensor:
    """Bytes of `data` (uint8 vector) at `start + offsets`, int64; 0 past the end."""
    positions = tf.cast(start, tf.int64) + tf.constant(offsets, tf.int64)
    padded = tf.concat([data, tf.zeros([1], tf.uint8)], axis=0)  # index `size` reads 0
    return tf.cast(tf.gather(padded, tf.minimum(positions, tf.size(data, tf.int64))), tf.int64)


def _number(data: tf.Tensor, start, length: int, *, big_endian: bool) -> tf.Tensor:
    """An unsigned integer of `length` bytes at `start`."""
    weights = [256**k for k in range(length)]
    weights = weights[::-1] if big_endian else weights
    return tf.reduce_sum(_bytes_at(data, list(range(length)), start) * weights)


def _colour_table(packed: tf.Tensor) -> tf.Tensor:
    """Bytes of a GIF colour table, from the packed flags byte that announces it."""
    return tf.where(
        packed >= 128, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), packed % 8), 0
    )


def _gif_pixels(data: tf.Tensor) -> tf.Tensor:
    """Pixels TensorFlow's GIF reader allocates: the canvas, plus every frame (it inflates
    all frames before it returns the first). Walks the blocks without decoding any."""
    size = tf.size(data, out_type=tf.int64)
    canvas = _number(data, 6, 2, big_endian=False) * _number(data, 8, 2, big_endian=False)

    def step(position, in_blocks, pixels, done):
        byte = _bytes_at(data, [0], position)[0]
        # Inside an extension's or a frame's data: sub-blocks of (length, bytes), 0 ends.
        after_block = position + 1 + byte
        extension, frame = byte == 0x21, byte == 0x2C
        frame_pixels = _number(data, position + 5, 2, big_endian=False) * _number(
            data, position + 7, 2, big_endian=False
        )
        local_table = _colour_table(_bytes_at(data, [9], position)[0])
        next_block = tf.where(extension, position + 2, position + 11 + local_table)
        return (
            tf.where(in_blocks, after_block, next_block),
            tf.where(in_blocks, byte != 0, extension | frame),
            pixels + tf.where(~in_blocks & frame, frame_pixels, 0),
            ~in_blocks & ~(extension | frame),  # the trailer, or a byte that is no block
        )

    start = 13 + _colour_table(_bytes_at(data, [10], 0)[0])
    _, _, frames, _ = tf.while_loop(
        lambda position, in_blocks, pixels, done: (position < size) & ~done,
        step,
        (start, tf.constant(False), tf.constant(0, tf.int64), tf.constant(False)),
    )
    return canvas + frames


_PNG, _JPEG, _GIF, _BMP = 1, 2, 3, 4  # kinds of encoded image (0: none we decode)


def _kind(contents: tf.Tensor) -> tf.Tensor:
    """Which format the bytes' signature names (int32, in `headers.SIGNATURES`' order), with
    no branch."""
    found = [
        tf.reduce_any([tf.equal(tf.strings.substr(contents, 0, len(s)), s) for s in signatures])
        for signatures in SIGNATURES.values()
    ]
    kinds = tf.cast(tf.stack(found), tf.int32)
    return tf.where(tf.reduce_any(found), tf.cast(tf.argmax(kinds), tf.int32) + 1, 0)


def _header_pixels(contents: tf.Tensor, kind: tf.Tensor) -> tf.Tensor:
    """Pixels of a PNG or BMP from fixed header offsets (0 for other kinds)."""
    data = tf.io.decode_raw(tf.strings.substr(contents, 0, 32), tf.uint8)
    png = _number(data, 16, 4, big_endian=True) * _number(data, 20, 4, big_endian=True)
    # BMP sides are signed 32-bit; a negative height means top-down rows.
    width, height = (_signed32(_number(data, k, 4, big_endian=False)) for k in (18, 22))
    return tf.where(kind == _PNG, png, tf.where(kind == _BMP, tf.abs(width * height), 0))


def _jpeg_pixels(contents: tf.Tensor) -> tf.Tensor:
    return tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64))


def decoded_pixels(contents: tf.Tensor) -> tf.Tensor:
    """How many pixels decoding `contents` would allocate, read from its headers alone
    (int64); 0 when the bytes are not a PNG, JPEG, GIF or BMP. The graph twin of
    `headers.pixels`, for the serving signature (tested to agree)."""
    kind = _kind(contents)
    branches = [
        lambda: _header_pixels(contents, kind),
        lambda: _jpeg_pixels(contents),
        lambda: _gif_pixels(tf.io.decode_raw(contents, tf.uint8)),
    ]
    return tf.switch_case(tf.where(kind == _JPEG, 1, tf.where(kind == _GIF, 2, 0)), branches)


def can_decode(contents: tf.Tensor) -> tf.Tensor:
    """Whether `contents` is a PNG, JPEG, GIF or BMP within the pixel limit (a bool):
    what the serving signature decodes, so that no input can take its memory."""
    pixels = decoded_pixels(contents)
    return (pixels > 0) & (pixels <= MAX_IMAGE_PIXELS)


def _signed32(value: tf.Tensor) -> tf.Tensor:
    return tf.where(value >= 2**31, value - 2**32, value)


def decode_image(contents: tf.Tensor) -> tf.Tensor:
    """Decodes PNG, JPEG, BMP (and GIF's first frame) bytes to uint8 RGB.

    JPEG uses the accurate integer DCT, which matches PIL; TF's default fast DCT differs
    by up to 3 levels. Alpha is dropped and grey is replicated, as PIL's convert("RGB").
    No pixel limit here: callers screen first (`headers.screen` for files, `can_decode` in
    the serving graph), because a limit check in this function costs 15-30% of tf.data's
    decode throughput (BUILD.md).
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
