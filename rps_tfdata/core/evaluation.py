"""Accuracy, loss and confusion matrix of a model on un-augmented images: the one evaluation
path, used by training's final metrics and by `python -m rps_tfdata.evaluate`."""

from typing import Any

import keras
import numpy as np

from rps_tfdata.core import artifacts, index, pipeline
from rps_tfdata.core.errors import DatasetLayoutError


def evaluate_split(
    model: keras.Model, split: index.Split, options: pipeline.PipelineOptions
) -> dict[str, Any]:
    """Evaluates `model` on every image of `split`, read once, in order, not augmented.

    Returns:
      `accuracy`, `loss` (mean categorical cross-entropy), `num_images`, `class_names`,
      and `confusion_matrix` as a list of rows: row = true class, column = predicted
      class, in `class_names` order.
    """
    if not split.paths:
        raise DatasetLayoutError("there is nothing to evaluate: the subset holds no image files")
    dataset = pipeline.make_image_dataset(split.paths, options._replace(cache="none"))
    probabilities = model.predict(dataset, verbose=0).astype(np.float64)
    labels = np.asarray(split.labels)
    num_classes = len(split.class_names)
    # Clipped as Keras clips probabilities in its categorical cross-entropy.
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return {
        "accuracy": float((predicted == labels).mean()),
        "loss": float(-np.log(picked).mean()),
        "num_images": len(split.paths),
        "class_names": list(split.class_names),
        "confusion_matrix": confusion.tolist(),
    }


def evaluate_folder(run: artifacts.Run, data_dir: str) -> dict[str, Any]:
    """Evaluates a finished run on every image of `data_dir` (its classes must be the run's)."""
    split = index.list_all(data_dir)
    index.check_same_classes(run.class_names, split.class_names, data_dir)
    if not split.paths:
        raise DatasetLayoutError(f"data folder {data_dir!r} holds no image files")
    return evaluate_split(run.model, split, run.options)


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
