"""Side by side: the seed's ImageDataGenerator pipeline and ours, training the same CNN.

Both runs of a pair start from the same seed (same initial weights, same dropout stream),
read the same files with the same split, augment training AND validation as the seed
does, and record per epoch the learning curves and wall time. A final un-augmented
evaluation of the validation subset gives each run's clean accuracy and loss, since the
seed's augmented `val_accuracy` is noisy.

The run takes the training settings it is given (image size, batch, learning rate,
precision, ...) with the seed's augmented validation; that needs augmentation on the
host, so `augment_on="auto"` means host here and "device" is refused.
"""

import statistics
from typing import NamedTuple, Sequence

import keras
import numpy as np

from rps_tfdata.bench import seed_reference
from rps_tfdata.trainer import config as config_lib
from rps_tfdata.trainer import datasets, evaluation, inputs, loop, run_state, training
from rps_tfdata.trainer import plan as plan_lib

PIPELINES = ("seed_idg", "rps_tfdata")
CURVE_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds")


class ParityRun(NamedTuple):
    """One training run: which pipeline, which seed, its history and clean val accuracy."""

    pipeline: str
    seed: int
    history: dict[str, list[float]]
    clean_val_accuracy: float
    clean_val_loss: float


def start(
    config: config_lib.TrainConfig, plan: plan_lib.Plan, num_classes: int
) -> tuple[keras.Model, loop.Steps]:
    """The CNN with the initial weights of `config.seed`, and its train step."""
    keras.utils.set_random_seed(config.seed)
    built = training.build(config, plan, num_classes)
    return built.model, built.steps


def _seed_epoch(iterators: seed_reference.SeedIterators):
    """One epoch of the seed's pipeline: training batches (with the unused per-image seeds
    of our step) and its augmented validation batches."""
    train = (
        (x, y, np.zeros((len(x), 2), np.int64))
        for x, y in (next(iterators.train) for _ in range(len(iterators.train)))
    )
    validation = [next(iterators.validation) for _ in range(len(iterators.validation))]
    return train, validation


def _our_epoch(config: config_lib.TrainConfig, data: datasets.Data, epoch: int, augmentation):
    train = inputs.training_batches(
        data.train,
        seed=config.seed,
        start_epoch=epoch,
        end_epoch=epoch + 1,
        augmentation=augmentation,
    )
    validation = inputs.evaluation_batches(
        data.validation, augmentation=augmentation, seed=config.seed, epoch=epoch
    )
    return iter(train), validation


def train_one(
    name: str, config: config_lib.TrainConfig, plan: plan_lib.Plan, data: datasets.Data
) -> ParityRun:
    """Trains the CNN for `config.epochs` on pipeline `name` ("seed_idg" or "rps_tfdata"),
    with the same training loop, so that only the input pipeline differs; `data` is
    ours, read with `plan`, and gives the clean evaluation of both."""
    num_classes = len(data.class_names)
    if name == "seed_idg":
        iterators = seed_reference.seed_iterators(
            config.data_dir,
            image_size=config.image_size,
            batch_size=config.batch_size,
            seed=config.seed,
            rescale=False,
        )
    model, steps = start(config, plan, num_classes)
    history: dict[str, list[float]] = {key: [] for key in CURVE_KEYS}
    for epoch in range(config.epochs):
        run_state.reset_dropout(model, config.seed, epoch)
        if name == "seed_idg":
            train, validation = _seed_epoch(iterators)
        else:
            train, validation = _our_epoch(config, data, epoch, plan.augmentation)
        result = loop.run_epoch(steps, train, inputs.batch_count(data.train))
        probabilities, labels = evaluation.predict_all(steps.predict, validation)
        scores = evaluation.scores(probabilities, labels, num_classes)
        row = (result.loss, result.accuracy, scores["loss"], scores["accuracy"], result.seconds)
        for key, value in zip(CURVE_KEYS, row, strict=True):
            history[key].append(value)
    clean = evaluation.evaluate_split(steps.predict, data.validation, data.class_names)
    return ParityRun(name, config.seed, history, clean["accuracy"], clean["loss"])


def parity_config(config: config_lib.TrainConfig, seed: int) -> config_lib.TrainConfig:
    """`config` with the seed's augmented validation, on the host, and this seed (the plan,
    made when it trains, refuses augmentation on the device)."""
    augment_on = "host" if config.augment_on == "auto" else config.augment_on
    return config._replace(augment_validation=True, augment_on=augment_on, seed=seed)


def train_side_by_side(config: config_lib.TrainConfig, *, repeats: int = 1) -> list[ParityRun]:
    """For seeds `config.seed`, +1, ...: trains the seed's pipeline and ours on `config`."""
    runs = []
    for seed in range(config.seed, config.seed + repeats):
        run_config = parity_config(config, seed)
        source = datasets.open_source(run_config)
        plan = plan_lib.make_plan(
            run_config, image_counts=source.image_counts, strategy_override="one_device"
        )
        data = source.load(plan.worker, plan.input)  # read once
        runs.extend(train_one(name, run_config, plan, data) for name in PIPELINES)
    return runs


def format_table(runs: Sequence[ParityRun]) -> str:
    """One Markdown table: a row per run and epoch, then a summary row per run."""
    header = "| pipeline | seed | epoch | " + " | ".join(CURVE_KEYS) + " |"
    lines = [header, "|" + "---|" * (3 + len(CURVE_KEYS))]
    for run in runs:
        for epoch in range(len(run.history["loss"])):
            values = " | ".join(f"{run.history[k][epoch]:.4f}" for k in CURVE_KEYS)
            lines.append(f"| {run.pipeline} | {run.seed} | {epoch + 1} | {values} |")
    lines += [
        "",
        "| pipeline | seed | final val_accuracy (augmented, as the seed) | clean val_accuracy"
        " | median epoch seconds |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        seconds = statistics.median(run.history["epoch_seconds"])
        lines.append(
            f"| {run.pipeline} | {run.seed} | {run.history['val_accuracy'][-1]:.4f} | "
            f"{run.clean_val_accuracy:.4f} | {seconds:.2f} |"
        )
    return "\n".join(lines)
