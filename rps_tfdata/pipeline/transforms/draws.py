"""The augmentation's random numbers: counter-based uniform draws, a hash of each image's
own seed, the same bits on every device and backend.

Integer operations only (MurmurHash3's 32-bit finalizer over the seed's words and a
counter), so a tf.data pipeline, an XLA-compiled train step and a jax or torch model
draw the same parameters from the same seed. The 32-bit words are held in int32 (the
widest integer every backend has without options), the logical shifts masked; the
uniform values are formed in float64 (float32 on jax without `jax_enable_x64`, which
rounds them). Written once against an ops namespace (`warp`'s `xp`).
"""

from typing import Any

import keras

from rps_tfdata.pipeline.transforms import tensorflow_ops

Ops = Any


def _int32(pattern: int) -> int:
    """A 32-bit pattern as the int32 that holds it."""
    return pattern - (1 << 32) if pattern >= 1 << 31 else pattern


def _shift_right(x: Any, bits: int, xp: Ops) -> Any:
    """The logical right shift of 32-bit words held in int32."""
    return xp.bitwise_and(xp.right_shift(x, bits), (1 << (32 - bits)) - 1)


def _mix32(x: Any, xp: Ops) -> Any:
    """MurmurHash3's 32-bit finalizer: every input bit flips each output bit with
    probability near 1/2. int32 products wrap alike in graph kernels, XLA and torch."""
    x = xp.bitwise_xor(x, _shift_right(x, 16, xp))
    x = x * _int32(0x85EBCA6B)
    x = xp.bitwise_xor(x, _shift_right(x, 13, xp))
    x = x * _int32(0xC2B2AE35)
    return xp.bitwise_xor(x, _shift_right(x, 16, xp))


def float_dtype(xp: Ops) -> str:
    """The float the draws and the parameters are computed in: float64 but on jax
    without 64-bit types, where it is float32."""
    if xp is tensorflow_ops or keras.backend.backend() != "jax":
        return "float64"
    import jax  # here: only a jax backend has it

    return "float64" if jax.config.jax_enable_x64 else "float32"


def _words(seeds: Any, xp: Ops) -> list[Any]:
    """Each row's seed as four 32-bit words in int32: a 64-bit seed's low and high
    words, a 32-bit seed's word and 0."""
    if "64" in str(seeds.dtype):
        words = []
        for k in range(4):
            word = xp.bitwise_and(xp.right_shift(seeds[:, k // 2], 32 * (k % 2)), 0xFFFFFFFF)
            words.append(xp.cast(xp.where(word >= 1 << 31, word - (1 << 32), word), "int32"))
        return words
    low = [xp.cast(seeds[:, 0], "int32"), xp.cast(seeds[:, 1], "int32")]
    return [low[0], xp.zeros_like(low[0]), low[1], xp.zeros_like(low[1])]


def unit_uniforms(seeds: Any, count: int, xp: Ops = tensorflow_ops) -> Any:
    """(batch, count) uniform values in [0, 1): row i a hash of its own seed `seeds[i]`
    ((batch, 2) integers), each value from two hashes of the seed's words and a counter,
    53 bits."""
    counters = [_int32((k * 0x9E3779B9) & 0xFFFFFFFF) for k in range(2 * count)]
    bits = _mix32(xp.convert_to_tensor(counters, "int32")[None, :] + _int32(0x6A09E667), xp)
    for word in _words(seeds, xp):
        bits = _mix32(xp.bitwise_xor(bits, word[:, None]), xp)
    dtype = float_dtype(xp)
    high = xp.cast(bits[:, 0::2], dtype)
    high = xp.where(high < 0, high + 2.0**32, high)  # the unsigned word
    low = xp.cast(_shift_right(bits[:, 1::2], 11, xp), dtype)
    return (high * 2.0**21 + low) * 2.0**-53


def seeds_per_image(seed: Any, batch_size: Any, xp: Ops = tensorflow_ops) -> Any:
    """(batch_size, 2) per-image seeds from one (2,) seed: its first word, and its
    second plus the image's place."""
    places = xp.cast(xp.arange(batch_size), seed.dtype)
    first = xp.zeros_like(places) + seed[0]
    return xp.stack([first, places + seed[1]], axis=1)
