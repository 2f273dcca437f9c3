"""Helpers the tests share: where the real images are, and writing small image files."""

import os

import numpy as np
import tensorflow as tf

# The real RPS training images, downscaled to 28x28 (../shared beside the checkout).
SHARED_RPS28 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "rps28", "rps")


def write_png(path: str, image: np.ndarray) -> str:
    """Writes a uint8 (h, w, c) array as PNG, creating folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(image))
    return path
