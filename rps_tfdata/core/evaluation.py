"""Accuracy, loss and confusion matrix on un-augmented images: the one evaluation path,
used by training (each epoch's validation, the final metrics) and by
`python -m rps_tfdata.evaluate`."""

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from rps_tfdata.core import artifacts, headers, input_pipeline, listing, loop
from rps_tfdata.core.datasets.base import check_policy
from rps_tfdata.core.errors import DatasetLayoutError

Predict = Callable[[tf.Tensor], tf.Tensor]


def predict_all(predict: Predict, batches: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, integer labels) of every image of `batches`, in order; the rows
    with no label (a batch's padding) are left out."""
    probabilities, labels = [], []
    for images, one_hot in batches:
        one_hot = np.asarray(one_hot)
        present = one_hot.sum(axis=1) > 0
        probabilities.append(np.asarray(predict(images), np.float64)[present])
        labels.append(one_hot[present].argmax(axis=1))
    return np.concatenate(probabilities), np.concatenate(labels)


def summarize(probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, mean cross-entropy (clipped as Keras clips) and the confusion matrix."""
    clip = loop.PROBABILITY_CLIP
    picked = np.clip(probabilities[np.arange(len(labels)), labels], clip, 1 - clip)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    return {
        "accuracy": float((predicted == labels).mean()),
        "loss": float(-np.log(picked).mean()),
        "num_images": len(labels),
        "confusion_matrix": confusion.tolist(),
    }


def evaluate_prepared(
    predict: Predict, prepared: input_pipeline.Prepared, class_names: list[str]
) -> dict[str, Any]:
    """Evaluates on every readable image of a prepared split, in order, not augmented.

    Returns:
      `accuracy`, `loss`, `num_images`, `class_names`, `confusion_matrix` (row = true
      class, column = predicted, in `class_names` order) and `skipped_images`.
    """
    probabilities, labels = predict_all(predict, input_pipeline.evaluation_batches(prepared))
    result = summarize(probabilities, labels, len(class_names))
    result["class_names"] = list(class_names)
    result["skipped_images"] = headers.as_records(prepared.bad)
    return result


def evaluate_folder(
    run: artifacts.Run, data_dir: str, *, on_bad_image: str = "skip"
) -> dict[str, Any]:
    """Evaluates a finished run on every readable image of `data_dir` (the run's classes)."""
    split = listing.list_all(data_dir)
    listing.check_same_classes(run.class_names, split.class_names, data_dir)
    prepared = input_pipeline.prepare(
        split.paths, split.labels, len(split.class_names), run.options
    )
    check_policy(prepared.bad, len(split.paths), on_bad_image)
    if not prepared.paths:
        raise DatasetLayoutError(f"data folder {data_dir!r} holds no readable image files")
    return evaluate_prepared(loop.make_predict(run.model), prepared, run.class_names)


def format_report(result: dict[str, Any]) -> str:
    """A human-readable summary with the confusion matrix labelled by class name."""
    names = result["class_names"]
    width = max(len(n) for n in names + ["true \\ predicted"]) + 2
    skipped = len(result.get("skipped_images", []))
    lines = [
        f"images: {result['num_images']}  accuracy: {result['accuracy']:.4f}  "
        f"loss: {result['loss']:.4f}" + (f"  (skipped unreadable: {skipped})" if skipped else ""),
        "true \\ predicted".ljust(width) + "".join(n.rjust(width) for n in names),
    ]
    for name, row in zip(names, result["confusion_matrix"], strict=True):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)
