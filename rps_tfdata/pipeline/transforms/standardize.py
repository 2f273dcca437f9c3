"""ImageDataGenerator's standardisation, in the graph: what IDG does to each image after
its augmentation, in IDG's order.

`preprocessing_function`, then `rescale`, then the per-image centring and scaling, then
the per-channel statistics of `fit` (`featurewise_center`, `featurewise_std_normalization`)
and the ZCA whitening matrix. `fit_statistics` computes those statistics as IDG's `fit`
does, in NumPy. A user's `preprocessing_function` runs in the graph when it traces with
TensorFlow ops and does the same on every call; else in Python, one image at a time
(`tf.numpy_function`), with one log line saying so.
"""

import random
import warnings
from typing import Callable, NamedTuple, Optional

import numpy as np
import tensorflow as tf
from absl import logging

# IDG's guard against dividing by a zero deviation.
EPSILON = 1e-6


class Standardization(NamedTuple):
    """The standardisation keywords of an ImageDataGenerator, and what `fit` computed.

    `mean` and `std` are per channel, shape (1, 1, C); `zca_whitening_matrix` is
    (h*w*C, h*w*C). Statistics left None are not applied (IDG warns that the generator
    was not fit, and so does `warn_if_unfit`).
    """

    preprocessing_function: Optional[Callable] = None
    rescale: Optional[float] = None
    samplewise_center: bool = False
    samplewise_std_normalization: bool = False
    featurewise_center: bool = False
    featurewise_std_normalization: bool = False
    zca_whitening: bool = False
    mean: Optional[np.ndarray] = None
    std: Optional[np.ndarray] = None
    zca_whitening_matrix: Optional[np.ndarray] = None

    @property
    def does_anything(self) -> bool:
        return any(
            (
                self.preprocessing_function,
                self.rescale,
                self.samplewise_center,
                self.samplewise_std_normalization,
                self.featurewise_center,
                self.featurewise_std_normalization,
                self.zca_whitening,
            )
        )


def warn_if_unfit(standardization: Standardization) -> None:
    """IDG's warnings for statistics asked for but never computed by `fit` (IDG repeats
    them for every image; here they are said once, when a flow is made)."""
    for asked, have, name in (
        (standardization.featurewise_center, standardization.mean, "featurewise_center"),
        (
            standardization.featurewise_std_normalization,
            standardization.std,
            "featurewise_std_normalization",
        ),
        (standardization.zca_whitening, standardization.zca_whitening_matrix, "zca_whitening"),
    ):
        if asked and have is None:
            warnings.warn(
                f"This ImageDataGenerator specifies `{name}`, but it hasn't been fit on any "
                "training data. Fit it first by calling `.fit(numpy_data)`.",
                stacklevel=3,
            )


def standardize(
    images: tf.Tensor,
    standardization: Standardization,
    *,
    python_function: bool = False,
    samplewise_over_batch: bool = False,
) -> tf.Tensor:
    """IDG's `standardize` of a float32 batch (n, h, w, C), image by image.

    Args:
      images: the augmented batch, float32.
      standardization: the generator's keywords and fitted statistics.
      python_function: run `preprocessing_function` in Python (`why_not_in_graph` said it
        cannot run in the graph).
      samplewise_over_batch: the per-image statistics over the whole batch, as IDG's
        public `standardize` computes them when a user hands it a batch.

    Returns:
      The standardised batch, float32.
    """
    s = standardization
    x = images
    if s.preprocessing_function is not None:
        x = _preprocessed(x, s.preprocessing_function, python_function)
    if s.rescale:
        x = x * tf.cast(s.rescale, x.dtype)
    axes = [0, 1, 2, 3] if samplewise_over_batch else [1, 2, 3]
    if s.samplewise_center:
        x = x - tf.reduce_mean(x, axis=axes, keepdims=True)
    if s.samplewise_std_normalization:
        x = x / (tf.math.reduce_std(x, axis=axes, keepdims=True) + EPSILON)
    if s.featurewise_center and s.mean is not None:
        x = x - tf.constant(s.mean, x.dtype)
    if s.featurewise_std_normalization and s.std is not None:
        x = x / (tf.constant(s.std, x.dtype) + EPSILON)
    if s.zca_whitening and s.zca_whitening_matrix is not None:
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        x = tf.reshape(flat @ tf.constant(s.zca_whitening_matrix, x.dtype), tf.shape(x))
    return x


def _preprocessed(images: tf.Tensor, function: Callable, python_function: bool) -> tf.Tensor:
    """`function` applied to each image of the batch, as IDG calls it (one 3-D image)."""
    if not python_function:
        return tf.vectorized_map(function, images, fallback_to_while_loop=True)

    def each(batch: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(function(image), np.float32) for image in batch])

    out = tf.numpy_function(each, [images], tf.float32, stateful=True)
    out.set_shape(images.shape)
    return out


def why_not_in_graph(function: Callable, image_shape: tuple[int, ...]) -> Optional[str]:
    """Why `function` cannot run in the graph, or None when it can: it traces with
    TensorFlow ops on one float32 image, returns an image of the same shape, and traces
    to the same graph twice without drawing from Python's or NumPy's random generators
    (a random number drawn while tracing would be frozen into the graph, the same for
    every image, where IDG draws a new one per call)."""
    spec = tf.TensorSpec(image_shape, tf.float32)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    graphs = []
    for _ in range(2):
        try:
            concrete = tf.function(function).get_concrete_function(spec)
        except Exception as e:  # noqa: BLE001 - any failure of user code to trace
            return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        graphs.append(_ops_and_constants(concrete.graph))
        output = concrete.structured_outputs
        if not isinstance(output, tf.Tensor) or not output.shape.is_compatible_with(image_shape):
            return f"it returns {output!r}, not one image of shape {image_shape}"
    drew = not _same_state(numpy_state, np.random.get_state()) or python_state != random.getstate()
    np.random.set_state(numpy_state)
    random.setstate(python_state)
    if drew:
        return "it draws from NumPy's or Python's random generator"
    if graphs[0] != graphs[1]:
        return "it traces to a different graph each time (a value drawn when it is called)"
    return None


def _ops_and_constants(graph: tf.Graph) -> list[tuple[str, bytes]]:
    """The graph's operations in order with the values of its constants: what two traces
    of a function that draws nothing share, whatever names they give their operations."""
    return [
        (
            op.type,
            op.get_attr("value").SerializeToString(deterministic=True)
            if op.type == "Const"
            else b"",
        )
        for op in graph.get_operations()
    ]


def _same_state(first: tuple, second: tuple) -> bool:
    return all(
        np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
        for a, b in zip(first, second, strict=True)
    )


def runs_in_python(function: Optional[Callable], image_shape: tuple[int, ...]) -> bool:
    """Whether `function` must run in Python, logged once when it must."""
    if function is None:
        return False
    reason = why_not_in_graph(function, image_shape)
    if reason is None:
        return False
    name = getattr(function, "__qualname__", repr(function))
    logging.warning(
        "preprocessing_function %s runs in Python, one image at a time (tf.numpy_function), "
        "which costs speed: it cannot run in the graph (%s)",
        name,
        reason,
    )
    return True


def fit_statistics(
    x: np.ndarray,
    standardization: Standardization,
    zca_epsilon: float,
    *,
    channel_axis: int = 3,
) -> Standardization:
    """The statistics IDG's `fit` computes from `x` (rank 4, channels on `channel_axis`),
    already rescaled and augmented as `fit` asks, in float of `x`'s dtype: the
    per-channel mean and deviation (shaped to broadcast over one image), the ZCA
    whitening matrix (over the images flattened in their layout). The other fields are
    kept."""
    s = standardization
    x = np.copy(x)
    axes = tuple(a for a in range(4) if a != channel_axis)
    shape = [1, 1, 1]
    shape[channel_axis - 1] = x.shape[channel_axis]
    mean = std = zca = None
    if s.featurewise_center:
        mean = np.mean(x, axis=axes).reshape(shape)
        x -= mean
    if s.featurewise_std_normalization:
        std = np.std(x, axis=axes).reshape(shape)
        x /= std + EPSILON
    if s.zca_whitening:
        flat = np.reshape(x, (len(x), -1))
        u, singular, _ = np.linalg.svd(flat.T, full_matrices=False)
        inverse = np.sqrt(len(x)) / (singular + zca_epsilon)
        zca = (u * inverse).dot(u.T)
    return s._replace(
        mean=mean if mean is not None else s.mean,
        std=std if std is not None else s.std,
        zca_whitening_matrix=zca if zca is not None else s.zca_whitening_matrix,
    )
