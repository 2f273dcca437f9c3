"""Accuracy, loss and confusion matrix on un-augmented images: the one evaluation path,
used by training (each epoch's validation, the final metrics) and by
`python -m rps_tfdata.evaluate`; and the classification of files with a finished run
(`python -m rps_tfdata.predict`)."""

from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from rps_tfdata.pipeline.reading import headers, listing, prepare
from rps_tfdata.pipeline.reading.prepare import require_images
from rps_tfdata.serving.predictions import Predictions
from rps_tfdata.trainer import artifacts, inputs, loop
from rps_tfdata.trainer.datasets.base import check_policy
from rps_tfdata.trainer.inputs import LabelledSplit

Predict = Callable[[tf.Tensor], tf.Tensor]
REPORTED_MISTAKES = 20  # misclassified files the printed report lists (--json: every one)
REPORT = ("confusion_matrix", "per_class", "misclassified")  # what metrics.json adds per split


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


def scores(probabilities: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
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


def per_class(confusion: np.ndarray, class_names: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class from the confusion matrix (row =
    true class), and their unweighted mean ("macro"); 0 where a ratio has no images."""

    def ratio(top: float, bottom: float) -> float:
        return float(top / bottom) if bottom else 0.0

    confusion = np.asarray(confusion)
    report = {}
    for k, name in enumerate(class_names):
        precision = ratio(confusion[k, k], confusion[:, k].sum())
        recall = ratio(confusion[k, k], confusion[k].sum())
        f1 = ratio(2 * precision * recall, precision + recall)
        report[name] = {"precision": precision, "recall": recall, "f1": f1}
        report[name]["support"] = int(confusion[k].sum())
    report["macro"] = {
        key: float(np.mean([report[n][key] for n in class_names]))
        for key in ("precision", "recall", "f1")
    }
    return report


def misclassified(
    paths: list[str], probabilities: np.ndarray, labels: np.ndarray, class_names: list[str]
) -> list[dict[str, Any]]:
    """Each image the model got wrong: its path, true and predicted class, and the
    probability given to the prediction, most confident mistakes first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    rows = [
        {
            "path": paths[i],
            "true": class_names[labels[i]],
            "predicted": class_names[predicted[i]],
            "probability": float(probabilities[i, predicted[i]]),
        }
        for i in wrong
    ]
    return sorted(rows, key=lambda row: -row["probability"])


def evaluate_split(
    predict: Predict, split: LabelledSplit, class_names: list[str]
) -> dict[str, Any]:
    """Evaluates on every readable image of a split, in order, not augmented.

    Args:
      predict: the compiled predict step (`loop.make_predict`).
      split: the labelled split, read once (`inputs.read`).
      class_names: the class names in label order.

    Returns:
      `accuracy`, `loss`, `num_images`, `class_names`, `confusion_matrix` (row = true
      class, column = predicted, in `class_names` order), `per_class` (precision, recall,
      F1, support; and their macro mean), `misclassified` and `skipped_images`.
    """
    probabilities, labels = predict_all(predict, inputs.evaluation_batches(split))
    result = scores(probabilities, labels, len(class_names))
    result["class_names"] = list(class_names)
    result["per_class"] = per_class(result["confusion_matrix"], list(class_names))
    paths = split.prepared.paths
    result["misclassified"] = misclassified(paths, probabilities, labels, class_names)
    result["skipped_images"] = headers.as_records(split.prepared.bad)
    return result


def evaluate_folder(
    run: artifacts.Run, data_dir: str, *, on_bad_image: str = "skip"
) -> dict[str, Any]:
    """Evaluates a finished run on every readable image of `data_dir`.

    Args:
      run: the finished run (`artifacts.load_run`).
      data_dir: a class-per-folder set of the run's classes (a path or a bucket URL).
      on_bad_image: "skip" unreadable images (named) or "fail" on the first.

    Returns:
      As `evaluate_split`.

    Raises:
      DatasetLayoutError: other classes than the run's, or no readable image.
      BadImagesError: an unreadable image with on_bad_image="fail".
    """
    listed = listing.list_all(data_dir)
    listing.check_same_classes(run.class_names, listed.class_names, data_dir)
    split = inputs.read(listed.paths, listed.labels, len(listed.class_names), run.options)
    check_policy(split.prepared.bad, len(listed.paths), on_bad_image)
    require_images(split.prepared, f"data folder {data_dir!r}")
    return evaluate_split(loop.make_predict(run.model), split, run.class_names)


def classify(run: artifacts.Run, paths: Sequence[str]) -> Predictions:
    """Classifies files with a finished run's model, read as training read them.

    Args:
      run: the finished run (`artifacts.load_run`).
      paths: image files (paths or URLs).

    Returns:
      Each readable file's probabilities, in order, and the unreadable files with
      their reasons, apart.
    """
    prepared = prepare.prepare(paths, run.options)
    if not prepared.count:
        return Predictions(run.class_names, [], prepared.bad)
    predict = loop.make_predict(run.model)
    probabilities = [
        np.asarray(predict(images), np.float64)[np.asarray(present)]
        for images, present in inputs.image_batches(prepared)
    ]
    rows = list(zip(prepared.paths, np.concatenate(probabilities), strict=True))
    return Predictions(run.class_names, rows, prepared.bad)


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
    columns = ("precision", "recall", "f1", "support")
    lines.append("".ljust(width) + "".join(c.rjust(width) for c in columns))
    for name in [*names, "macro"]:
        figures = result["per_class"][name]
        cells = [
            f"{figures[c]:.4f}" if c != "support" else str(figures[c])
            for c in columns
            if c in figures
        ]
        lines.append(name.ljust(width) + "".join(cell.rjust(width) for cell in cells))
    wrong = result["misclassified"]
    lines.append(f"misclassified: {len(wrong)}" + (" (most confident first)" if wrong else ""))
    for row in wrong[:REPORTED_MISTAKES]:
        lines.append(
            f"  {row['path']}\ttrue {row['true']}\tpredicted {row['predicted']} "
            f"({row['probability']:.4f})"
        )
    if len(wrong) > REPORTED_MISTAKES:
        lines.append(f"  ... and {len(wrong) - REPORTED_MISTAKES} more (all of them with --json)")
    return "\n".join(lines)
