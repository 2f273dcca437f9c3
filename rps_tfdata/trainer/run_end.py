"""The end of a training run: the model with the best weights, the artifacts a finished
run holds, the final evaluation, metrics.json and the pictures.

The model and the training metrics are written first, then the evaluation is added, so
that a failure in the evaluation loses nothing already trained.
"""

import hashlib
import os
import statistics
from typing import Any, Callable, Optional

import keras
from absl import logging

from rps_tfdata.infra import atomic
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import headers, prepare
from rps_tfdata.serving import saved_model
from rps_tfdata.serving.finished import Run
from rps_tfdata.trainer import artifacts, evaluation, plots, recipe, run_state
from rps_tfdata.trainer.config import TrainConfig
from rps_tfdata.trainer.datasets import Data


def weights_digest(model: keras.Model) -> str:
    """sha256 of the model's weights, to show two workers (or runs) ended identical."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()


def run_metrics(history: list[dict[str, float]], data: Data) -> dict[str, Any]:
    """Run-level figures from the per-epoch history: best epoch, speed, sizes."""
    speeds = [row["train_images_per_sec"] for row in history]
    best = min(range(len(history)), key=lambda k: history[k]["val_loss"])
    return {
        "class_names": data.class_names,
        "epochs_run": len(history),
        "best_epoch": best + 1,
        "train_images_per_sec": statistics.median(speeds[1:] or speeds),
        "first_epoch_images_per_sec": speeds[0],
        "epoch_seconds_median": statistics.median(row["epoch_seconds"] for row in history),
        "peak_rss_mb": max(row["peak_rss_mb"] for row in history),
        "num_train_images": data.train.prepared.count,
        "num_validation_images": data.validation.prepared.count,
        "num_test_images": data.test.prepared.count if data.test else 0,
        "skipped_images": headers.as_records(data.skipped()),
    }


def finish(
    config: TrainConfig,
    options: PipelineOptions,
    data: Data,
    state: run_state.RunState,
    model: keras.Model,
    predict: Callable,
    *,
    early_stop: Optional[recipe.EarlyStop] = None,
    class_weights: Optional[list[float]] = None,
) -> dict[str, Any]:
    """Writes the finished run into `config.model_dir` and returns its metrics.

    Args:
      config: the run's settings.
      options: how the run read images (written as `preprocessing.json`).
      data: the run's splits; the test split is decoded only now.
      state: the run's state (its history, and TensorBoard for the confusion matrix).
      model: the trained model; its best weights are loaded from the folder.
      predict: the compiled predict step (`loop.make_predict`).
      early_stop: where early stopping ended the run, if it did.
      class_weights: the weights the loss gave each class, if any.

    Returns:
      The metrics written to `metrics.json`.
    """
    model_dir = config.model_dir
    final_digest = weights_digest(model)
    _write_best_model(model_dir, model, data.class_names, options)
    if data.test:  # screened at the start, decoded only now (a restart reads it no sooner)
        test = data.test._replace(prepared=prepare.decoded_now(data.test.prepared))
        data = data._replace(test=test)
    metrics = run_metrics(state.history, data)
    undecodable = _undecodable(data, state.history)
    metrics["skipped_images"] += headers.as_records(undecodable)
    metrics["num_train_images"] -= len(undecodable)  # the epochs weighed them zero
    metrics["final_weights_sha256"] = final_digest
    metrics.update(_recipe_facts(config, data.class_names, early_stop, class_weights))
    metrics_path = os.path.join(model_dir, artifacts.METRICS_FILE)
    atomic.write_json(metrics_path, {**metrics, "finished": False})
    last = _evaluate_splits(predict, data, metrics)
    _draw(model_dir, state, last, "test set" if data.test else "validation set")
    metrics["finished"] = True
    atomic.write_json(metrics_path, metrics)
    logging.info(
        "best epoch %d of %d; metrics in %s",
        metrics["best_epoch"],
        metrics["epochs_run"],
        metrics_path,
    )
    return metrics


def _write_best_model(
    model_dir: str, model: keras.Model, class_names: list[str], options: PipelineOptions
) -> None:
    """The model with its best weights (`model.keras`, the SavedModel) and what reading
    it back needs (the class names, the preprocessing)."""
    model.load_weights(os.path.join(model_dir, artifacts.BEST_WEIGHTS_FILE))
    with atomic.writing_elsewhere_first(os.path.join(model_dir, artifacts.FINAL_MODEL_FILE)) as to:
        model.save(to)
    atomic.write_json(os.path.join(model_dir, artifacts.CLASS_NAMES_FILE), class_names)
    artifacts.write_preprocessing(model_dir, options)
    saved_model.write(Run(model, class_names, options), saved_model.default_dir(model_dir))


def _evaluate_splits(predict: Callable, data: Data, metrics: dict[str, Any]) -> dict[str, Any]:
    """Evaluates validation, then the test set if any, into `metrics` (accuracy, loss
    and report of each); returns the last one's evaluation."""
    result: dict[str, Any] = {}
    for name, split in (("val", data.validation), ("test", data.test)):
        if split:
            result = evaluation.evaluate_split(predict, split, data.class_names)
            metrics[f"{name}_accuracy"] = result["accuracy"]
            metrics[f"{name}_loss"] = result["loss"]
            metrics[f"{name}_report"] = {key: result[key] for key in evaluation.REPORT}
            logging.info("%s set:\n%s", name, evaluation.format_report(result))
    return result


def _undecodable(data: Data, history: list[dict[str, float]]) -> list[headers.BadImage]:
    """The training files the epochs could not decode, named for metrics.json by one
    decode pass over this worker's shard, run only when an epoch met such a file."""
    if data.train.prepared.decoded or not any(row.get("unreadable_images") for row in history):
        return []
    logging.info("naming the training files that failed to decode (one decode pass)")
    return prepare.undecodable(data.train.prepared)


def _draw(model_dir: str, state: run_state.RunState, last: dict[str, Any], which: str) -> None:
    """The learning curves and the confusion matrix of `last` (the `which` set's
    evaluation) as PNGs in the run folder, the matrix in TensorBoard too; without
    matplotlib, a line saying how to get them."""
    if not plots.available():
        logging.info("no plots in %s: pip install 'rps_tfdata[plots]' (matplotlib)", model_dir)
        return
    curves = plots.learning_curves(state.history)
    atomic.write_bytes(os.path.join(model_dir, artifacts.HISTORY_PLOT_FILE), curves)
    title = f"{which}: accuracy {last['accuracy']:.4f}"
    matrix = plots.confusion_matrix(last["confusion_matrix"], last["class_names"], title)
    atomic.write_bytes(os.path.join(model_dir, artifacts.CONFUSION_PLOT_FILE), matrix)
    state.add_image("confusion_matrix", matrix)


def _recipe_facts(
    config: TrainConfig,
    class_names: list[str],
    stop: Optional[recipe.EarlyStop],
    class_weights: Optional[list[float]],
) -> dict[str, Any]:
    """How the run ended (its last epoch or early stopping, and why), and the class
    weights it trained with: what metrics.json says of the recipe."""
    facts: dict[str, Any] = {
        "ended": f"{recipe.EARLY_STOPPED} after epoch {stop.epoch}: {stop.reason}"
        if stop
        else f"after --epochs={config.epochs}"
    }
    if class_weights:
        facts["class_weights"] = dict(zip(class_names, class_weights, strict=True))
    return facts
