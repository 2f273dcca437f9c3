"""The seed's CNN, unchanged: four conv/pool stages, dropout, a dense layer, softmax.

A GPU-minded option leaves the architecture alone: a mixed-precision dtype policy
(computations in float16/bfloat16, variables and the final softmax in float32).
"""

from typing import Union

import keras

from rps_tfdata.trainer.architecture import CONV_FILTERS, min_image_size
from rps_tfdata.trainer.config import CHOICES


def build_model(
    image_size: tuple[int, int],
    num_classes: int,
    *,
    dropout: float = 0.5,
    precision: str = "float32",
) -> keras.Model:
    """Builds the seed's CNN for `image_size` (height, width) inputs in [0, 1].

    Args:
      precision: a `--mixed_precision` policy for the CNN's layers; the softmax stays float32
        so that probabilities and the loss keep full precision.

    Raises:
      ValueError: a side is too small for four conv/pool stages, or unknown precision.
    """
    smallest = min_image_size()
    if min(image_size) < smallest:
        raise ValueError(
            f"image size {image_size} is too small for the CNN's four conv/pool stages: "
            f"each side must be at least {smallest}"
        )
    if precision not in CHOICES["mixed_precision"]:
        precisions = CHOICES["mixed_precision"]
        raise ValueError(f"precision must be one of {precisions}. Received: {precision!r}")
    layers = [keras.Input(shape=(*image_size, 3), name="image")]
    for filters in CONV_FILTERS:
        layers += [
            keras.layers.Conv2D(filters, 3, activation="relu", dtype=precision),
            keras.layers.MaxPooling2D(2, dtype=precision),
        ]
    layers += [
        keras.layers.Flatten(dtype=precision),
        keras.layers.Dropout(dropout, dtype=precision),
        keras.layers.Dense(512, activation="relu", dtype=precision),
        keras.layers.Dense(
            num_classes, activation="softmax", dtype="float32", name="probabilities"
        ),
    ]
    return keras.Sequential(layers, name="rps_cnn")


def make_optimizer(
    *,
    learning_rate: Union[float, keras.optimizers.schedules.LearningRateSchedule] = 1e-3,
    precision: str = "float32",
):
    """Adam, as the seed trains; float16 adds dynamic loss scaling (its gradients would
    underflow without it); bfloat16 has float32's range and needs none."""
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
