"""A TensorFlow Lite model of a finished run, for phones and small devices.

Input `pixels`: uint8 [N, H, W, 3] at the run's training size (`preprocessing.json`),
RGB, already resized by the caller (the app's own resize: training used PIL's nearest
by default); the rescale to [0, 1] is in the model. Output `probabilities`: float32
[N, classes] in the order of `labels.txt` (one class name per line), written beside it.
Quantization: none (float32 weights), float16 (half the size) or dynamic (int8 weights,
a quarter), TensorFlow's post-training options that need no calibration data.
"""

import os

import keras
import tensorflow as tf

from rps_tfdata.infra import atomic
from rps_tfdata.serving.finished import Run

FOLDER = "tflite"  # in a run's folder: export --tflite's model, labels and input description
MODEL, LABELS, INPUT = "model.tflite", "labels.txt", "input.json"


def default_dir(model_dir: str) -> str:
    """MODEL_DIR/tflite, where `export --tflite` writes."""
    return os.path.join(model_dir, FOLDER)


def convert(run: Run, quantize: str = "none") -> bytes:
    """The run's model as TensorFlow Lite flatbuffer bytes (see the module doc).

    The rescale is a Keras layer in front of the model: the converter freezes a Keras
    model's variables, while from a bare tf.function they stay unread variables (NaN).

    Args:
      run: the finished run.
      quantize: "none" (float32), "float16" or "dynamic" (int8 weights).

    Returns:
      The flatbuffer: uint8 pixels at the training size in, probabilities out.
    """
    height, width = run.options.image_size
    pixels = keras.Input((height, width, 3), dtype="uint8", name="pixels")
    probabilities = run.model(keras.layers.Rescaling(1.0 / 255.0)(pixels), training=False)
    wrapped = keras.Model(pixels, {"probabilities": probabilities})
    converter = tf.lite.TFLiteConverter.from_keras_model(wrapped)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def write(run: Run, out: str, quantize: str = "none") -> str:
    """Writes `model.tflite`, `labels.txt` and `input.json` (what the input must be)
    into the folder `out`, each under a temporary name and renamed.

    Args:
      run: the finished run.
      out: the folder to write into.
      quantize: as `convert`.

    Returns:
      The path of `model.tflite`.
    """
    flatbuffer = convert(run, quantize)
    height, width = run.options.image_size
    described = {
        "input": "pixels",
        "dtype": "uint8",
        "shape": [None, height, width, 3],
        "channels": "RGB",
        "resize": f"by the caller, to {height}x{width} (training: {run.options.resize_method})",
        "output": "probabilities",
        "labels": LABELS,
        "quantize": quantize,
    }
    atomic.write_bytes(os.path.join(out, MODEL), flatbuffer)
    atomic.write_text(os.path.join(out, LABELS), "".join(f"{n}\n" for n in run.class_names))
    atomic.write_json(os.path.join(out, INPUT), described)
    return os.path.join(out, MODEL)
