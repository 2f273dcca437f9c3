"""Training and final evaluation of the seed's CNN: the whole job as one library call.

`train_and_evaluate` checks everything it can before the first step (settings, the model
folder, every image), trains epoch by epoch with a checkpoint after each, keeps the
weights with the best validation loss (as the seed meant to), and writes the run's
artifacts. Rerun with the same settings, it continues a killed run from its last
finished epoch, continues a finished one to a larger `epochs`, or reports a finished
one without training again.
"""

import csv
import io
import math
import os
import statistics
from typing import Any, NamedTuple, Optional

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata.core import (
    artifacts,
    evaluation,
    files,
    index,
    loop,
    pipeline,
    run_state,
    scan,
    stopping,
)
from rps_tfdata.core import model as model_lib
from rps_tfdata.core.augment import IDGAugmentation
from rps_tfdata.core.errors import ConfigError, DatasetLayoutError, TrainingStoppedError
from rps_tfdata.core.resources import peak_rss_mb

AUGMENT_MODES = ("idg", "none")
AUGMENT_PLACES = ("auto", "host", "device")
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


class TrainConfig(NamedTuple):
    """Everything a run needs; `rps_tfdata.train`'s flags document each field."""

    train_dir: str
    model_dir: str
    test_dir: Optional[str] = None
    epochs: int = 25
    validation_split: float = 0.2
    learning_rate: float = 1e-3
    seed: int = 42
    augment: str = "idg"
    augment_validation: bool = False
    augment_on: str = "auto"
    jit_augment: bool = True
    precision: str = "float32"
    jit_compile: str = "auto"
    on_bad_image: str = "skip"
    input: pipeline.PipelineOptions = pipeline.PipelineOptions()


class Data(NamedTuple):
    """The run's splits, read and checked: training, validation and optional test."""

    class_names: list[str]
    train: pipeline.Prepared
    validation: pipeline.Prepared
    test: Optional[pipeline.Prepared]

    def skipped(self) -> list[scan.BadImage]:
        """Every unreadable file of every split."""
        return [b for split in (self.train, self.validation, self.test) if split for b in split.bad]


def settings_of(config: TrainConfig) -> dict[str, Any]:
    """The run's settings by flag name, as `run_config.json` records them."""
    options = config.input
    return {
        "data_dir": os.path.abspath(config.train_dir),
        "test_dir": os.path.abspath(config.test_dir) if config.test_dir else None,
        "epochs": config.epochs,
        "validation_split": config.validation_split,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "augment": config.augment,
        "augment_validation": config.augment_validation,
        "augment_on": config.augment_on,
        "jit_augment": config.jit_augment,
        "mixed_precision": config.precision,
        "jit_compile": config.jit_compile,
        "on_bad_image": config.on_bad_image,
        "image_size": options.image_size[0],
        "batch_size": options.batch_size,
        "resize_method": options.resize_method,
        "deterministic": options.deterministic,
        "image_cache": options.cache,
        "parallel_calls": options.parallel_calls,
        "threadpool_size": options.threadpool_size,
        "prefetch": options.prefetch,
    }


def data_fingerprint(config: TrainConfig) -> str:
    """A digest of the listed image files (paths, sizes, modification times), so a rerun
    can tell a continuation from the same folder holding other images."""
    listed = index.list_all(config.train_dir).paths
    if config.test_dir:
        listed += index.list_all(config.test_dir).paths
    return files.fingerprint(listed)


def resolve_augment_on(augment_on: str) -> str:
    """ "auto": on the device when a GPU is visible (the host would starve it), else on
    the host (a CPU "device" is the host anyway, and the tf.data threads overlap it)."""
    if augment_on == "auto":
        return "device" if tf.config.list_physical_devices("GPU") else "host"
    if augment_on not in AUGMENT_PLACES:
        raise ValueError(f"augment_on must be one of {AUGMENT_PLACES}. Received: {augment_on!r}")
    return augment_on


def augments_on_device(config: TrainConfig) -> bool:
    """Whether this run augments inside the train step rather than in tf.data."""
    return resolve_augment_on(config.augment_on) == "device"


def make_augmentation(config: TrainConfig) -> Optional[IDGAugmentation]:
    """The seed's IDG augmentation, or None with --augment=none."""
    if config.augment == "none":
        return None
    return IDGAugmentation(seed=config.seed, jit_compile=config.jit_augment)


def check_config(config: TrainConfig) -> None:
    """Raises ConfigError (naming the flags at fault) for settings that cannot work together."""
    try:
        index.check_validation_split(config.validation_split)
    except ValueError as e:
        raise ConfigError(f"--{e}") from e
    on_device = augments_on_device(config)
    if config.augment_validation and on_device:
        raise ConfigError(
            "--augment_validation needs --augment_on=host: augmentation on the device runs "
            "inside the train step only, never on validation"
        )
    if on_device and not config.jit_augment and model_lib.step_uses_xla(config.jit_compile):
        raise ConfigError(
            "--nojit_augment cannot run inside an XLA-compiled train step (its projective-"
            "transform op has no XLA kernel): drop --nojit_augment, or use --augment_on=host "
            "or --jit_compile=false"
        )


def _fewest_images_for_validation(validation_split: float) -> int:
    """The smallest class that gets a validation image, with IDG's truncation."""
    count = 1
    while index.validation_count(count, validation_split) < 1:
        count += 1
    return count


def _list_splits(config: TrainConfig) -> tuple[index.Split, index.Split, Optional[index.Split]]:
    """The IDG split of the listing (bad files included, as IDG splits), checked."""
    train = index.list_split(config.train_dir, config.validation_split, "training")
    validation = index.list_split(config.train_dir, config.validation_split, "validation")
    if len(train.class_names) < 2:
        raise DatasetLayoutError(
            f"data folder {config.train_dir!r} has {len(train.class_names)} class folder(s) "
            f"{train.class_names}; a classifier needs at least two"
        )
    for subset, split in (("training", train), ("validation", validation)):
        if not split.paths:
            raise DatasetLayoutError(
                f"the {subset} subset of {config.train_dir!r} is empty: each class needs at least "
                f"{_fewest_images_for_validation(config.validation_split)} images for "
                f"validation_split={config.validation_split}"
            )
    test = None
    if config.test_dir:
        test = index.list_all(config.test_dir)
        index.check_same_classes(train.class_names, test.class_names, config.test_dir)
    return train, validation, test


def load_data(config: TrainConfig) -> Data:
    """Lists and splits the images as IDG does, then reads every file once: unreadable
    files leave whichever subset holds them (so the readable files' split is IDG's), and
    are reported, or stop the run under `on_bad_image="fail"`. Test images are scanned
    now and decoded again at the end (no cache held through training)."""
    train, validation, test = _list_splits(config)
    num_classes = len(train.class_names)

    def read(split: index.Split, name: str, options: pipeline.PipelineOptions):
        return pipeline.prepare(split.paths, split.labels, num_classes, options, name=name)

    data = Data(
        train.class_names,
        read(train, "train", config.input),
        read(validation, "validation", config.input),
        read(test, "test", config.input._replace(cache="none")) if test else None,
    )
    total = sum(len(s.paths) for s in (train, validation, test) if s)
    scan.check_policy(data.skipped(), total, config.on_bad_image)
    if data.skipped():
        logging.warning("%s; they were left out", scan.describe(data.skipped(), total))
    for subset, split in (("training", data.train), ("validation", data.validation)):
        if not split.paths:
            raise DatasetLayoutError(f"the {subset} subset holds no readable image file")
    if data.test is not None and not data.test.paths:
        raise DatasetLayoutError(f"test folder {config.test_dir!r} holds no readable image file")
    for subset, split in (("training", data.train), ("validation", data.validation)):
        logging.info("%s: %s", subset, _counts(split, data.class_names))
    if data.test:
        logging.info("test: %s", _counts(data.test, data.class_names))
    return data


def _counts(split: pipeline.Prepared, class_names: list[str]) -> str:
    counts = ", ".join(f"{n}={split.labels.count(k)}" for k, n in enumerate(class_names))
    return f"{len(split.paths)} images ({counts}), {len(split.bad)} unreadable left out"


def build(config: TrainConfig, num_classes: int):
    """(model, optimizer, steps): the seed's CNN, Adam, and the compiled train step, with
    the augmentation inside the step when it runs on the device."""
    model = model_lib.build_model(config.input.image_size, num_classes, precision=config.precision)
    optimizer = model_lib.make_optimizer(
        learning_rate=config.learning_rate, precision=config.precision
    )
    optimizer.build(model.trainable_variables)
    steps = loop.make_steps(
        model,
        optimizer,
        augmentation=make_augmentation(config) if augments_on_device(config) else None,
        jit_compile=model_lib.step_uses_xla(config.jit_compile),
    )
    return model, optimizer, steps


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


def _train_epochs(config, data, model, steps, state, stop_signal) -> None:
    """Trains from the state's epoch to `config.epochs`, saving the state after each;
    `stop_signal()` names a signal that asks to stop at the next step."""
    start = int(state.epoch.numpy())
    host_augmentation = None if augments_on_device(config) else make_augmentation(config)
    batches = iter(
        pipeline.training_batches(
            data.train,
            seed=config.seed,
            start_epoch=start,
            end_epoch=config.epochs,
            augmentation=host_augmentation,
        )
    )
    num_steps = pipeline.steps_per_epoch(data.train)
    logs = os.path.join(config.model_dir, artifacts.LOGS)
    writers = {
        k: tf.summary.create_file_writer(os.path.join(logs, k)) for k in ("train", "validation")
    }
    for epoch in range(start, config.epochs):
        logging.info("epoch %d/%d started", epoch + 1, config.epochs)
        loop.reset_dropout(model, config.seed, epoch)
        progress = loop.progress_bar(num_steps)
        trained = loop.run_epoch(
            steps, batches, num_steps, progress=progress, should_stop=stop_signal
        )
        if trained is None:
            raise TrainingStoppedError(
                f"stopped by {stop_signal()} in epoch {epoch + 1}; the run is saved up to "
                f"epoch {epoch}: rerun the same command to continue from there"
            )
        validation = _validate(steps, data, config, epoch, host_augmentation)
        if not (math.isfinite(trained.loss) and math.isfinite(validation["loss"])):
            raise _diverged(epoch + 1, state, config)
        row = {
            "epoch": epoch + 1,
            "loss": trained.loss,
            "accuracy": trained.accuracy,
            "val_loss": validation["loss"],
            "val_accuracy": validation["accuracy"],
            "train_images_per_sec": trained.images / trained.seconds,
            "epoch_seconds": trained.seconds,
            "peak_rss_mb": peak_rss_mb(),
        }
        _log_epoch(row, config.epochs, _save_epoch(config, model, state, row, writers))


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
    model.load_weights(os.path.join(model_dir, artifacts.BEST_WEIGHTS))
    with files.atomic_path(os.path.join(model_dir, artifacts.FINAL_MODEL)) as temporary:
        model.save(temporary)
    files.write_json(os.path.join(model_dir, artifacts.CLASS_NAMES), data.class_names)
    artifacts.write_preprocessing(model_dir, config.input)
    metrics = summarize(state.history, data)
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
    files.check_writable(model_dir, "--model_dir")
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
    settings = {**settings_of(config), "data_files": data_fingerprint(config)}
    stored = _claim(config, settings, overwrite)
    if stored is not None:
        logging.info("%s already holds this finished run; nothing to train", config.model_dir)
        return stored
    with stopping.stop_requests() as stop_signal:
        keras.utils.set_random_seed(config.seed)
        data = load_data(config)
        model, optimizer, steps = build(config, len(data.class_names))
        # The folder becomes this run's only now that its data is known to be usable.
        run_state.write_settings(config.model_dir, settings)
        if flags_text is not None:
            files.write_text(os.path.join(config.model_dir, artifacts.FLAGS), flags_text)
        state = run_state.RunState(config.model_dir, model, optimizer)
        if state.restore():
            done = int(state.epoch.numpy())
            logging.info("continuing the run in %s after epoch %d", config.model_dir, done)
        _train_epochs(config, data, model, steps, state, stop_signal)
        return _finish(config, data, model, steps, state)
