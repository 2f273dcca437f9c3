"""Training and final evaluation of the seed's CNN on the tf.data pipeline.

`train_and_evaluate` is the whole job as a library call, with plain arguments, so a
notebook, a test or `python -m rps_tfdata.train` can run it alike. It keeps the weights
with the best validation loss (as the seed meant to), reloads them at the end, evaluates
validation and test on un-augmented images, and writes the run's artifacts.
"""

import os
import statistics
import sys
from typing import Any, NamedTuple, Optional

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata.core import artifacts, evaluation, files, index, pipeline
from rps_tfdata.core import model as model_lib
from rps_tfdata.core.augment import IDGAugmentation
from rps_tfdata.core.errors import ConfigError, DatasetLayoutError
from rps_tfdata.core.timing import EpochTimer

AUGMENT_MODES = ("idg", "none")
AUGMENT_PLACES = ("auto", "host", "device")


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
    input: pipeline.PipelineOptions = pipeline.PipelineOptions()


class Data(NamedTuple):
    """The run's splits: training, validation and optional test."""

    train: index.Split
    validation: index.Split
    test: Optional[index.Split]


def _fewest_images_for_validation(validation_split: float) -> int:
    """The smallest class that gets a validation image, with IDG's truncation."""
    count = 1
    while index.validation_count(count, validation_split) < 1:
        count += 1
    return count


def load_data(config: TrainConfig) -> Data:
    """Lists the splits, checking that none is empty and the test classes match."""
    train = index.list_split(config.train_dir, config.validation_split, "training")
    validation = index.list_split(config.train_dir, config.validation_split, "validation")
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
    for subset, split in (("training", train), ("validation", validation), ("test", test)):
        if split:
            logging.info("%s", index.describe(split, subset))
    return Data(train, validation, test)


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


def make_train_dataset(
    config: TrainConfig, data: Data, augmentation: Optional[IDGAugmentation]
) -> tf.data.Dataset:
    """The shuffled, augmented (when `augmentation` is given) training pipeline."""
    return pipeline.make_dataset(
        data.train.paths,
        data.train.labels,
        len(data.train.class_names),
        config.input,
        augmentation=augmentation,
        shuffle=True,
        seed=config.seed,
        name="train",
    )


def make_datasets(config: TrainConfig, data: Data) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """The training and validation pipelines (validation augmented only if asked).

    With augmentation on the device the pipelines carry un-augmented images and the
    model augments (see `make_model`).
    """
    augmentation = None if augments_on_device(config) else make_augmentation(config)
    val_ds = pipeline.make_dataset(
        data.validation.paths,
        data.validation.labels,
        len(data.train.class_names),
        config.input,
        augmentation=augmentation if config.augment_validation else None,
        seed=config.seed,
        name="validation",
    )
    return make_train_dataset(config, data, augmentation), val_ds


def make_model(config: TrainConfig, num_classes: int) -> keras.Model:
    """The seed's CNN, compiled, with the augmentation in front when it runs on the device."""
    augmentation = make_augmentation(config) if augments_on_device(config) else None
    model = model_lib.build_model(
        config.input.image_size, num_classes, precision=config.precision, augmentation=augmentation
    )
    return model_lib.compile_model(
        model,
        learning_rate=config.learning_rate,
        jit_compile=config.jit_compile,
        precision=config.precision,
    )


def fit_verbosity() -> int:
    """A live progress bar on a terminal; one line per epoch in logs and pipes."""
    return 1 if sys.stdout.isatty() else 2


def make_callbacks(config: TrainConfig, num_train_images: int) -> list[keras.callbacks.Callback]:
    """The timer first (later callbacks log what it adds), best-weights checkpoint, logs."""
    return [
        EpochTimer(num_train_images),
        keras.callbacks.ModelCheckpoint(
            os.path.join(config.model_dir, artifacts.BEST_WEIGHTS),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            verbose=1,
        ),
        keras.callbacks.CSVLogger(os.path.join(config.model_dir, artifacts.HISTORY)),
        keras.callbacks.TensorBoard(os.path.join(config.model_dir, artifacts.LOGS)),
    ]


def summarize(history: dict[str, list[float]], data: Data) -> dict[str, Any]:
    """Run-level figures from the per-epoch history: best epoch, speed, sizes."""
    speeds = history["train_images_per_sec"]
    steady = speeds[1:] or speeds
    best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)
    return {
        "class_names": data.train.class_names,
        "epochs_run": len(speeds),
        "best_epoch": best + 1,
        "train_images_per_sec": statistics.median(steady),
        "first_epoch_images_per_sec": speeds[0],
        "epoch_seconds_median": statistics.median(history["epoch_seconds"]),
        "peak_rss_mb": max(history["peak_rss_mb"]),
        "num_train_images": len(data.train.paths),
        "num_validation_images": len(data.validation.paths),
        "num_test_images": len(data.test.paths) if data.test else 0,
    }


def train_and_evaluate(config: TrainConfig) -> dict[str, Any]:
    """Trains, keeps the best-`val_loss` weights, evaluates, and writes the artifacts.

    Returns:
      The metrics also written to `metrics.json`.
    """
    check_config(config)
    os.makedirs(config.model_dir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    data = load_data(config)
    num_classes = len(data.train.class_names)
    train_ds, val_ds = make_datasets(config, data)
    model = make_model(config, num_classes)
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        callbacks=make_callbacks(config, len(data.train.paths)),
        verbose=fit_verbosity(),
        shuffle=False,  # the dataset reshuffles itself every epoch; this silences Keras
    )
    model.load_weights(os.path.join(config.model_dir, artifacts.BEST_WEIGHTS))
    metrics = summarize(history.history, data)
    for name, split in (("val", data.validation), ("test", data.test)):
        if split:
            result = evaluation.evaluate_split(model, split, config.input)
            metrics[f"{name}_accuracy"], metrics[f"{name}_loss"] = (
                result["accuracy"],
                result["loss"],
            )
    with files.atomic_path(os.path.join(config.model_dir, artifacts.FINAL_MODEL)) as temporary:
        model.save(temporary)
    files.write_json(os.path.join(config.model_dir, artifacts.CLASS_NAMES), data.train.class_names)
    artifacts.write_preprocessing(config.model_dir, config.input)
    files.write_json(os.path.join(config.model_dir, artifacts.METRICS), metrics)
    logging.info(
        "best epoch %d of %d; metrics in %s",
        metrics["best_epoch"],
        metrics["epochs_run"],
        os.path.join(config.model_dir, artifacts.METRICS),
    )
    return metrics
