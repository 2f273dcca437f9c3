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

from rps_tfdata.bench import seed_reference
from rps_tfdata.core import evaluation, training
from rps_tfdata.core.timing import EpochTimer

PIPELINES = ("seed_idg", "rps_tfdata")
CURVE_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds")


class ParityRun(NamedTuple):
    """One training run: which pipeline, which seed, its history and clean val accuracy."""

    pipeline: str
    seed: int
    history: dict[str, list[float]]
    clean_val_accuracy: float
    clean_val_loss: float


def _datasets(name: str, config: training.TrainConfig, data: training.Data):
    if name == "rps_tfdata":
        return training.make_datasets(config, data)
    iterators = seed_reference.seed_iterators(
        config.train_dir,
        image_size=config.input.image_size[0],
        batch_size=config.input.batch_size,
        seed=config.seed,
    )
    return iterators.train, iterators.validation


def start_model(config: training.TrainConfig, num_classes: int) -> keras.Model:
    """The compiled CNN with the initial weights and dropout stream of `config.seed`."""
    keras.utils.set_random_seed(config.seed)
    return training.make_model(config, num_classes)


def train_one(name: str, config: training.TrainConfig) -> ParityRun:
    """Trains the CNN for `config.epochs` on pipeline `name` ("seed_idg" or "rps_tfdata")."""
    data = training.load_data(config)
    train_ds, val_ds = _datasets(name, config, data)
    model = start_model(config, len(data.train.class_names))
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        callbacks=[EpochTimer(len(data.train.paths))],
        verbose=training.fit_verbosity(),
        # The seed calls fit with its default shuffle=True; tf.data shuffles by itself.
        shuffle=name == "seed_idg",
    )
    clean = evaluation.evaluate_split(model, data.validation, config.input)
    return ParityRun(name, config.seed, history.history, clean["accuracy"], clean["loss"])


def parity_config(config: training.TrainConfig, seed: int) -> training.TrainConfig:
    """`config` with the seed's augmented validation, on the host, and this seed; checked."""
    augment_on = "host" if config.augment_on == "auto" else config.augment_on
    changed = config._replace(augment_validation=True, augment_on=augment_on, seed=seed)
    training.check_config(changed)
    return changed


def train_side_by_side(config: training.TrainConfig, *, repeats: int = 1) -> list[ParityRun]:
    """For seeds `config.seed`, +1, ...: trains the seed's pipeline and ours on `config`."""
    runs = []
    for seed in range(config.seed, config.seed + repeats):
        run_config = parity_config(config, seed)
        runs.extend(train_one(name, run_config) for name in PIPELINES)
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
