"""The ops of `keras.ops` that IDG's kernel (`warp`, the augmentation's sampler) uses,
by the same names and arguments, as TensorFlow's own ops.

The kernel is written once, against an ops namespace (`xp`): this module where
TensorFlow runs it (inside a tf.data pipeline, whatever Keras' backend, and in
TensorFlow's train steps), `keras.ops` inside a model on another backend (jax, torch).
Operators (`+`, `*`, `<`, `|`, slicing) are the tensors' own on every backend.
"""

from typing import Any, Optional, Sequence

import tensorflow as tf


def abs(x: tf.Tensor) -> tf.Tensor:  # noqa: A001 - keras.ops' name
    return tf.abs(x)


def arange(stop: Any, dtype: str = "int32") -> tf.Tensor:
    return tf.range(stop, dtype=dtype)


def bitwise_and(x: tf.Tensor, y: Any) -> tf.Tensor:
    return tf.bitwise.bitwise_and(x, tf.cast(y, x.dtype))


def bitwise_xor(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    return tf.bitwise.bitwise_xor(x, y)


def cast(x: Any, dtype: str) -> tf.Tensor:
    return tf.cast(x, dtype)


def clip(x: tf.Tensor, x_min: Any, x_max: Any) -> tf.Tensor:
    return tf.clip_by_value(x, x_min, x_max)


def concatenate(xs: Sequence[tf.Tensor], axis: int = 0) -> tf.Tensor:
    return tf.concat(xs, axis)


def convert_to_tensor(x: Any, dtype: Optional[str] = None) -> tf.Tensor:
    return tf.convert_to_tensor(x, dtype)


def cos(x: tf.Tensor) -> tf.Tensor:
    return tf.cos(x)


def floor(x: tf.Tensor) -> tf.Tensor:
    return tf.floor(x)


def matmul(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    return tf.matmul(x, y)


def max(x: tf.Tensor, axis: Any = None, keepdims: bool = False) -> tf.Tensor:  # noqa: A001
    return tf.reduce_max(x, axis, keepdims)


def meshgrid(*xs: tf.Tensor, indexing: str = "xy") -> list[tf.Tensor]:
    return tf.meshgrid(*xs, indexing=indexing)


def min(x: tf.Tensor, axis: Any = None, keepdims: bool = False) -> tf.Tensor:  # noqa: A001
    return tf.reduce_min(x, axis, keepdims)


def minimum(x: Any, y: Any) -> tf.Tensor:
    return tf.minimum(x, y)


def ones_like(x: tf.Tensor) -> tf.Tensor:
    return tf.ones_like(x)


def reshape(x: tf.Tensor, shape: Any) -> tf.Tensor:
    return tf.reshape(x, shape)


def right_shift(x: tf.Tensor, y: Any) -> tf.Tensor:
    return tf.bitwise.right_shift(x, tf.cast(y, x.dtype))


def shape(x: tf.Tensor) -> tf.Tensor:
    return tf.shape(x)


def sin(x: tf.Tensor) -> tf.Tensor:
    return tf.sin(x)


def stack(xs: Sequence[tf.Tensor], axis: int = 0) -> tf.Tensor:
    return tf.stack(xs, axis)


def take(x: tf.Tensor, indices: tf.Tensor, axis: int = 0) -> tf.Tensor:
    return tf.gather(x, indices, axis=axis)


def where(condition: tf.Tensor, x: Any, y: Any) -> tf.Tensor:
    return tf.where(condition, x, y)


def zeros(shape: Any, dtype: str = "float32") -> tf.Tensor:
    return tf.zeros(shape, dtype)


def zeros_like(x: tf.Tensor) -> tf.Tensor:
    return tf.zeros_like(x)
