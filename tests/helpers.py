"""Helpers the tests share: the bundled real images, writing small image files, and the
settings of a small training run."""

import os

import numpy as np
import tensorflow as tf

# 60 real RPS training images at 28x28 (20 per class), shipped with the tests: see
# tests/data/README.md for where they come from and their licence.
RPS28 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "rps28")


def write_png(path: str, image: np.ndarray) -> str:
    """Writes a uint8 (h, w, c) array as PNG, creating folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(image))
    return path


def small_run(data_dir: str, model_dir, **changes):
    """A `TrainConfig` that trains in seconds: 48-pixel images, batches of 8, one epoch
    unless `changes` say otherwise."""
    from rps_tfdata.core.config import TrainConfig

    settings = {"epochs": 1, "image_size": 48, "batch_size": 8, **changes}
    return TrainConfig(data_dir=data_dir, model_dir=str(model_dir), **settings)
