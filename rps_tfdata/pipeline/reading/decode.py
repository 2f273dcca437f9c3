"""Reading one image as ImageDataGenerator does: decode to uint8 in IDG's colour mode,
resize like PIL (`pil_resize`).

The training pipeline, the drop-in generator, evaluation and prediction all read images
through `load_image`, so a model never sees pixels prepared another way than it was
trained on.
"""

import tensorflow as tf

from rps_tfdata.pipeline.options import COLOR_MODES, check_color_mode
from rps_tfdata.pipeline.reading import pil_resize
from rps_tfdata.pipeline.reading.headers import MAX_IMAGE_PIXELS, SIGNATURES

# How an image can be resized: PIL's methods as IDG's `load_img` applies them (bit for
# bit), and TensorFlow's own bilinear and area resize.
RESIZE_METHODS = tuple(f"pil_{name}" for name in pil_resize.METHODS) + ("bilinear", "area")


def resize(
    image: tf.Tensor,
    image_size: tuple[int, int],
    method: str,
    *,
    keep_aspect_ratio: bool = False,
) -> tf.Tensor:
    """Resizes one uint8 (h, w, C) image to `image_size` by `method` (one of
    `RESIZE_METHODS`), keeping uint8; `keep_aspect_ratio` first crops the centred box
    of the target's aspect ratio, as IDG's `load_img` does."""
    if method not in RESIZE_METHODS:
        raise ValueError(f"resize method must be one of {RESIZE_METHODS}. Received: {method!r}")
    if method.startswith("pil_"):
        return pil_resize.resize(image, image_size, method[4:], keep_aspect_ratio=keep_aspect_ratio)
    if keep_aspect_ratio:
        left, top, right, bottom = tf.unstack(
            pil_resize.aspect_box(tf.shape(image)[0], tf.shape(image)[1], image_size)
        )
        image = image[top:bottom, left:right]
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


def decode_image(contents: tf.Tensor, color_mode: str = "rgb") -> tf.Tensor:
    """Decodes PNG, JPEG, BMP (and GIF's first frame) bytes to uint8 in `color_mode`, as
    PIL's `convert` gives it to IDG: "rgb" drops alpha and replicates grey; "grayscale"
    is PIL's luma of the RGB pixels (L = (19595 R + 38470 G + 7471 B + 2^15) >> 16);
    "rgba" keeps a PNG's alpha (other formats: opaque).

    JPEG uses the accurate integer DCT, which matches PIL; TF's default fast DCT differs
    by up to 3 levels. No pixel limit here: callers screen first (`headers.screen` for
    files, `can_decode` in the serving graph), because a limit check in this function
    costs 15-30% of tf.data's decode throughput (BUILD.md).
    """
    if color_mode == "rgba":
        return tf.cond(
            tf.io.is_jpeg(contents) | ~_is_png(contents),
            lambda: _opaque(_decode_rgb(contents)),
            lambda: tf.io.decode_png(contents, channels=4),
        )
    rgb = _decode_rgb(contents)
    if color_mode == "grayscale":
        weights = tf.constant([19595, 38470, 7471], tf.int32)
        luma = tf.reduce_sum(tf.cast(rgb, tf.int32) * weights, axis=-1, keepdims=True)
        return tf.cast(tf.bitwise.right_shift(luma + 0x8000, 16), tf.uint8)
    check_color_mode(color_mode)
    return rgb


def _decode_rgb(contents: tf.Tensor) -> tf.Tensor:
    return tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )


def _is_png(contents: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.substr(contents, 0, 8), SIGNATURES["png"][0])


def _opaque(rgb: tf.Tensor) -> tf.Tensor:
    return tf.concat(
        [rgb, tf.fill(tf.concat([tf.shape(rgb)[:2], [1]], 0), tf.constant(255, tf.uint8))], -1
    )


def load_image(
    path: tf.Tensor,
    image_size: tuple[int, int],
    method: str,
    *,
    color_mode: str = "rgb",
    keep_aspect_ratio: bool = False,
) -> tf.Tensor:
    """Reads, decodes and resizes one image file to uint8 (height, width, channels)."""
    return image_from_bytes(
        tf.io.read_file(path),
        image_size,
        method,
        color_mode=color_mode,
        keep_aspect_ratio=keep_aspect_ratio,
    )


def image_from_bytes(
    contents: tf.Tensor,
    image_size: tuple[int, int],
    method: str,
    *,
    color_mode: str = "rgb",
    keep_aspect_ratio: bool = False,
) -> tf.Tensor:
    """Decodes and resizes one image file's bytes to uint8 (height, width, channels)."""
    image = decode_image(contents, color_mode)
    image = resize(image, image_size, method, keep_aspect_ratio=keep_aspect_ratio)
    image.set_shape([*image_size, COLOR_MODES[color_mode]])
    return image


def rescale(images: tf.Tensor) -> tf.Tensor:
    """uint8 or 0..255 float -> float32 in [0, 1], IDG's `rescale=1/255`."""
    return tf.cast(images, tf.float32) * (1.0 / 255.0)
