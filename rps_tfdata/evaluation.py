"""Accuracy, loss and confusion matrix of a finished run on a class-per-folder dataset."""

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from rps_tfdata import artifacts, index, pipeline


def evaluate_folder(run: artifacts.Run, data_dir: str) -> dict[str, Any]:
    """Evaluates `run` on every image of `data_dir` (its classes must be the run's).

    Returns:
      `accuracy`, `loss`, `num_images`, `class_names`, and `confusion_matrix` as a list
      of rows: row = true class, column = predicted class, in `class_names` order.
    """
    split = index.list_split(data_dir, 0.0, "training")
    index.check_same_classes(run.class_names, split.class_names, data_dir)
    if not split.paths:
        raise index.DatasetLayoutError(f"data folder {data_dir!r} holds no image files")
    dataset = pipeline.make_dataset(split.paths, split.labels, len(split.class_names), run.options)
    probabilities = run.model.predict(dataset, verbose=0)
    labels = np.asarray(split.labels)
    loss = keras.losses.categorical_crossentropy(
        tf.one_hot(labels, len(run.class_names)), probabilities
    )
    predicted = probabilities.argmax(axis=1)
    confusion = tf.math.confusion_matrix(labels, predicted, num_classes=len(run.class_names))
    return {
        "accuracy": float((predicted == labels).mean()),
        "loss": float(tf.reduce_mean(loss)),
        "num_images": len(split.paths),
        "class_names": run.class_names,
        "confusion_matrix": confusion.numpy().tolist(),
    }


def format_report(result: dict[str, Any]) -> str:
    """A human-readable summary with the confusion matrix labelled by class name."""
    names = result["class_names"]
    width = max(len(n) for n in names + ["true \\ predicted"]) + 2
    lines = [
        f"images: {result['num_images']}  accuracy: {result['accuracy']:.4f}  "
        f"loss: {result['loss']:.4f}",
        "true \\ predicted".ljust(width) + "".join(n.rjust(width) for n in names),
    ]
    for name, row in zip(names, result["confusion_matrix"], strict=True):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)
