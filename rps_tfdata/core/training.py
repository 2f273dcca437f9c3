"""Training and final evaluation of the seed's CNN: the whole job as one library call.

`train_and_evaluate` checks everything it can before the first step (settings, the model
folder, every image), trains epoch by epoch with a checkpoint after each, keeps the
weights with the best validation loss (as the seed meant to), and writes the run's
artifacts. Rerun with the same settings, it continues a killed run from its last
finished epoch, continues a finished one to a larger `epochs`, or reports a finished
one without training again.
"""

import contextlib
import csv
import hashlib
import io
import math
import os
import shutil
import statistics
import tempfile
from typing import Any, Optional

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata.core import (
    artifacts,
    data_service,
    distribution,
    evaluation,
    export,
    files,
    loop,
    pipeline,
    run_lock,
    run_state,
    scan,
    stopping,
)
from rps_tfdata.core import model as model_lib
from rps_tfdata.core.config import (
    TrainConfig,
    augments_on_device,
    check_config,
    make_augmentation,
    settings_of,
)
from rps_tfdata.core.data import Data, data_fingerprint, load_data
from rps_tfdata.core.errors import ConfigError, TrainingStoppedError
from rps_tfdata.core.resources import peak_rss_mb

HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "train_images_per_sec",
    "epoch_seconds",
    "peak_rss_mb",
)


def build(config: TrainConfig, num_classes: int, strategy: tf.distribute.Strategy):
    """(model, optimizer, steps): the seed's CNN and Adam, built in the strategy's scope,
    and the compiled train step, with the augmentation inside it when it runs on the
    device.

    Raises:
      ConfigError: the global batch does not divide among the strategy's replicas.
    """
    distribution.replica_batch_size(config.input.batch_size, strategy)
    with strategy.scope():
        model = model_lib.build_model(
            config.input.image_size, num_classes, precision=config.precision
        )
        optimizer = model_lib.make_optimizer(
            learning_rate=config.learning_rate, precision=config.precision
        )
        optimizer.build(model.trainable_variables)
    steps = loop.make_steps(
        model,
        optimizer,
        strategy=strategy,
        augmentation=make_augmentation(config) if augments_on_device(config) else None,
        jit_compile=model_lib.step_uses_xla(config.jit_compile),
    )
    return model, optimizer, steps


def _epoch_feeds(config, data, strategy, worker, start: int, host_augmentation):
    """Yields each epoch's (batches, steps): one distributed pipeline across the epochs,
    or with the tf.data service one job per epoch, run until it ends (steps None)."""
    if not config.data_service:
        batches, steps = _distributed_batches(config, data, strategy, worker, start)
        while True:
            yield batches, steps
    prefix = data_service.job_prefix()
    for epoch in range(start, config.epochs):
        dataset = pipeline.epoch_batches(
            data.train, epoch, seed=config.seed, augmentation=host_augmentation
        )
        yield iter(data_service.distribute(dataset, config.data_service, f"{prefix}-{epoch}")), None


def _distributed_batches(config, data, strategy, worker, start: int):
    """This worker's training batches for epochs [start, epochs), one replica's share at
    a time, padded so that every worker takes the same steps; and the steps per epoch."""
    replica_batch = distribution.replica_batch_size(config.input.batch_size, strategy)
    local_replicas = strategy.num_replicas_in_sync // worker.count
    # The largest shard any worker can hold: its own readable files when alone.
    shard = (
        len(data.train.paths) if worker.count == 1 else math.ceil(data.listed_train / worker.count)
    )
    steps = math.ceil(math.ceil(shard / replica_batch) / local_replicas)
    host_augmentation = None if augments_on_device(config) else make_augmentation(config)

    def dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return pipeline.training_batches(
            data.train,
            seed=config.seed,
            start_epoch=start,
            end_epoch=config.epochs,
            augmentation=host_augmentation,
            batch_size=replica_batch,
            batches_per_epoch=steps * local_replicas,
        )

    return iter(strategy.distribute_datasets_from_function(dataset)), steps


def _validate(
    steps: loop.Steps, data: Data, config: TrainConfig, epoch: int, augmentation
) -> dict[str, Any]:
    """This epoch's validation (augmented with this epoch's seeds when the seed's defect is on)."""
    batches = pipeline.evaluation_batches(
        data.validation,
        augmentation=augmentation if config.augment_validation else None,
        seed=config.seed,
        epoch=epoch,
    )
    probabilities, labels = evaluation.predict_all(steps.predict, batches)
    return evaluation.summarize(probabilities, labels, len(data.class_names))


def write_history(model_dir: str, history: list[dict[str, float]]) -> None:
    """history.csv, rewritten whole from the checkpointed history (each epoch once)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    files.write_text(os.path.join(model_dir, artifacts.HISTORY), text.getvalue())


def _log_epoch(row: dict[str, float], epochs: int, improved: bool) -> None:
    print(
        f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f}, accuracy {row['accuracy']:.4f}, "
        f"val_loss {row['val_loss']:.4f}, val_accuracy {row['val_accuracy']:.4f} "
        f"({row['epoch_seconds']:.1f} s, {row['train_images_per_sec']:.1f} images/s)"
        + (" - best so far, weights saved" if improved else ""),
        flush=True,
    )


def _diverged(epoch: int, state: run_state.RunState, config: TrainConfig) -> TrainingStoppedError:
    kept = (
        f"the best weights so far (epoch {int(state.best_epoch.numpy())}) are kept in "
        f"{os.path.join(config.model_dir, artifacts.BEST_WEIGHTS)}"
        if int(state.best_epoch.numpy())
        else "no epoch finished, so no weights were kept"
    )
    return TrainingStoppedError(
        f"training diverged: the loss is not finite in epoch {epoch}; {kept}. Lower "
        f"--learning_rate (now {config.learning_rate}) and train into a new --model_dir"
    )


def _save_epoch(config: TrainConfig, model, state, row: dict[str, float], writers) -> bool:
    """Records a finished epoch: best weights (if it is the best), TensorBoard, the
    checkpoint, then history.csv. Returns whether it is the best so far."""
    improved = row["val_loss"] < float(state.best_val_loss.numpy())
    if improved:
        with files.atomic_path(os.path.join(config.model_dir, artifacts.BEST_WEIGHTS)) as path:
            model.save_weights(path)
        state.best_val_loss.assign(row["val_loss"])
        state.best_epoch.assign(row["epoch"])
    for name, writer in writers.items():
        prefix = "" if name == "train" else "val_"
        with writer.as_default(step=row["epoch"] - 1):
            tf.summary.scalar("epoch_loss", row[f"{prefix}loss"])
            tf.summary.scalar("epoch_accuracy", row[f"{prefix}accuracy"])
        writer.flush()
    # A kill before the save replays this epoch, which computes the same row again.
    state.record_epoch(row)
    state.save()
    write_history(config.model_dir, state.history)
    return improved


def _train_epochs(config, data, model, steps, state, stop_signal, strategy, worker) -> None:
    """Trains from the state's epoch to `config.epochs`, saving the state after each;
    `stop_signal()` names a signal that asks to stop at the next step."""
    start = int(state.epoch.numpy())
    host_augmentation = None if augments_on_device(config) else make_augmentation(config)
    feeds = _epoch_feeds(config, data, strategy, worker, start, host_augmentation)
    logs = os.path.join(config.model_dir, artifacts.LOGS)
    writers = {
        k: tf.summary.create_file_writer(os.path.join(logs, k)) for k in ("train", "validation")
    }
    with _dispatcher_watch(config, state) as saving:
        for epoch in range(start, config.epochs):
            loop.reset_dropout(model, config.seed, epoch)
            feed = next(feeds)
            row = _train_epoch(
                config, data, steps, state, epoch, feed, stop_signal, host_augmentation
            )
            with saving:
                improved = _save_epoch(config, model, state, row, writers)
            _log_epoch(row, config.epochs, improved)


def _dispatcher_watch(config: TrainConfig, state: run_state.RunState):
    """With the tf.data service, a bound on the wait for a dispatcher that is gone
    (`data_service.watch_dispatcher`), yielding the lock that a save holds; else nothing."""
    if not config.data_service:
        return contextlib.nullcontext(contextlib.nullcontext())

    def gone(address: str) -> str:
        return (
            f"the tf.data service dispatcher at {address} is gone (no answer for "
            f"{config.data_service_timeout:g} s, --data_service_timeout); the run is saved up "
            f"to epoch {int(state.epoch.numpy())}: rerun the same command once a dispatcher "
            f"serves {address} again"
        )

    return data_service.watch_dispatcher(config.data_service, config.data_service_timeout, gone)


def _train_epoch(config, data, steps, state, epoch, feed, stop_signal, host_augmentation):
    """Trains and validates one epoch; returns its history row.

    Raises:
      TrainingStoppedError: a signal, a short epoch from the service, or divergence.
    """
    logging.info("epoch %d/%d started", epoch + 1, config.epochs)
    batches, num_steps = feed
    progress = loop.progress_bar(num_steps) if num_steps else None
    trained = loop.run_epoch(steps, batches, num_steps, progress=progress, should_stop=stop_signal)
    if trained is None:
        raise TrainingStoppedError(
            f"stopped by {stop_signal()} in epoch {epoch + 1}; the run is saved up to "
            f"epoch {epoch}: rerun the same command to continue from there"
        )
    if config.data_service and trained.images != len(data.train.paths):
        raise TrainingStoppedError(
            f"the tf.data service delivered {trained.images} of the "
            f"{len(data.train.paths)} training images in epoch {epoch + 1} (did a worker "
            f"stop?); the run is saved up to epoch {epoch}: rerun to continue from there"
        )
    validation = _validate(steps, data, config, epoch, host_augmentation)
    if not (math.isfinite(trained.loss) and math.isfinite(validation["loss"])):
        raise _diverged(epoch + 1, state, config)
    return {
        "epoch": epoch + 1,
        "loss": trained.loss,
        "accuracy": trained.accuracy,
        "val_loss": validation["loss"],
        "val_accuracy": validation["accuracy"],
        "train_images_per_sec": trained.images / trained.seconds,
        "epoch_seconds": trained.seconds,
        "peak_rss_mb": peak_rss_mb(),
    }


def summarize(history: list[dict[str, float]], data: Data) -> dict[str, Any]:
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
        "num_train_images": len(data.train.paths),
        "num_validation_images": len(data.validation.paths),
        "num_test_images": len(data.test.paths) if data.test else 0,
        "skipped_images": scan.as_records(data.skipped()),
    }


def _finish(config: TrainConfig, data: Data, model, steps, state) -> dict[str, Any]:
    """Writes the model with the best weights and the training metrics first, then adds
    the final evaluation, so a failure there loses nothing already trained."""
    model_dir = config.model_dir
    final_digest = weights_digest(model)
    model.load_weights(os.path.join(model_dir, artifacts.BEST_WEIGHTS))
    with files.atomic_path(os.path.join(model_dir, artifacts.FINAL_MODEL)) as temporary:
        model.save(temporary)
    files.write_json(os.path.join(model_dir, artifacts.CLASS_NAMES), data.class_names)
    artifacts.write_preprocessing(model_dir, config.input)
    options = config.input
    export.export(
        model,
        data.class_names,
        options.image_size,
        options.resize_method,
        export.default_dir(model_dir),
    )
    metrics = summarize(state.history, data)
    metrics["final_weights_sha256"] = final_digest
    metrics_path = os.path.join(model_dir, artifacts.METRICS)
    files.write_json(metrics_path, {**metrics, "finished": False})
    for name, split in (("val", data.validation), ("test", data.test)):
        if split:
            result = evaluation.evaluate_prepared(steps.predict, split, data.class_names)
            metrics[f"{name}_accuracy"], metrics[f"{name}_loss"] = (
                result["accuracy"],
                result["loss"],
            )
    metrics["finished"] = True
    files.write_json(metrics_path, metrics)
    logging.info(
        "best epoch %d of %d; metrics in %s",
        metrics["best_epoch"],
        metrics["epochs_run"],
        metrics_path,
    )
    return metrics


def _claim(
    config: TrainConfig, settings: dict[str, Any], overwrite: bool
) -> Optional[dict[str, Any]]:
    """Decides what this call does with the model folder. Returns the stored metrics of a
    finished run with these settings (nothing to do), else None (train or continue).

    Raises:
      ConfigError: the folder holds another run (other settings, or more epochs).
    """
    model_dir = config.model_dir
    recorded = run_state.read_settings(model_dir)
    if overwrite:
        artifacts.remove_run(model_dir)
    elif recorded is None and artifacts.holds_run(model_dir):
        raise ConfigError(
            f"--model_dir={model_dir} holds the artifacts of a run this version cannot "
            "continue (no run_config.json); pass --overwrite to replace them, or use another "
            "--model_dir"
        )
    elif recorded is not None:
        changed = run_state.differing(recorded, settings)
        if "data_files" in changed:
            raise ConfigError(
                f"the image files under --data_dir={config.train_dir} (or --test_dir) changed "
                f"since the run in {model_dir} started; pass --overwrite to train again on "
                "them, or use another --model_dir"
            )
        if changed:
            listing = ", ".join(f"--{n}={recorded.get(n)} (now {settings.get(n)})" for n in changed)
            raise ConfigError(
                f"--model_dir={model_dir} holds a run with other settings: {listing}; rerun "
                "with its settings to continue it, pass --overwrite to replace it, or use "
                "another --model_dir"
            )
        done = artifacts.finished_metrics(model_dir)
        if done and config.epochs < done["epochs_run"]:
            raise ConfigError(
                f"--epochs={config.epochs} is fewer than the {done['epochs_run']} epochs the run "
                f"in {model_dir} already trained; pass --epochs={done['epochs_run']} or more"
            )
        if done and config.epochs == done["epochs_run"]:
            return done
    return None


def train_and_evaluate(
    config: TrainConfig, *, overwrite: bool = False, flags_text: Optional[str] = None
) -> dict[str, Any]:
    """Trains (or continues, or reports) the run in `config.model_dir`.

    Args:
      overwrite: replace a run of other settings in the folder instead of refusing.
      flags_text: the command's flags as a flagfile, written as `flags.txt` once the
        folder is known to be this run's.

    Returns:
      The metrics also written to `metrics.json`.
    """
    check_config(config)
    # First: a multi-worker strategy must exist before TensorFlow runs any op.
    strategy = distribution.make_strategy(config.strategy, cpu_devices=config.cpu_devices)
    worker = distribution.worker_of(strategy)
    settings = {**settings_of(config), "data_files": data_fingerprint(config)}
    files.check_writable(config.model_dir, "--model_dir")
    # Only the chief writes the folder; the other workers share it with the chief.
    with run_lock.hold(config.model_dir) if worker.is_chief else contextlib.nullcontext():
        stored = _claim(config, settings, overwrite and worker.is_chief)
        if stored is not None:
            logging.info("%s already holds this finished run; nothing to train", config.model_dir)
            return stored
        with stopping.stop_requests() as stop_signal:
            return _train(config, settings, flags_text, stop_signal, strategy, worker)


def _train(config, settings, flags_text, stop_signal, strategy, worker) -> dict[str, Any]:
    """Reads the data, builds the model and trains (or continues) the run to the end."""
    keras.utils.set_random_seed(config.seed)
    data = load_data(config, worker)
    model, optimizer, steps = build(config, len(data.class_names), strategy)
    if not worker.is_chief:
        return _train_as_worker(
            config, data, model, optimizer, steps, stop_signal, strategy, worker
        )
    # The folder becomes this run's only now that its data is known to be usable.
    run_state.write_settings(config.model_dir, settings)
    if flags_text is not None:
        files.write_text(os.path.join(config.model_dir, artifacts.FLAGS), flags_text)
    state = run_state.RunState(config.model_dir, model, optimizer)
    if state.restore():
        done = int(state.epoch.numpy())
        logging.info("continuing the run in %s after epoch %d", config.model_dir, done)
    _train_epochs(config, data, model, steps, state, stop_signal, strategy, worker)
    return _finish(config, data, model, steps, state)


def _train_as_worker(config, data, model, optimizer, steps, stop_signal, strategy, worker):
    """A non-chief worker: the same steps as the chief (collectives need every worker),
    restored from the chief's checkpoint, but every file written to a temporary folder
    that is removed at the end. Returns what it trained: epochs and the weights' digest."""
    scratch = tempfile.mkdtemp(prefix=f"rps_tfdata_worker{worker.index}_")
    try:
        state = run_state.RunState(scratch, model, optimizer, restore_from=config.model_dir)
        state.restore()
        own = config._replace(model_dir=scratch)
        _train_epochs(own, data, model, steps, state, stop_signal, strategy, worker)
        return {"epochs_run": len(state.history), "final_weights_sha256": weights_digest(model)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def weights_digest(model: keras.Model) -> str:
    """sha256 of the model's weights, to show two workers (or runs) ended identical."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()
