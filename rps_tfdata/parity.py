"""Side by side: the seed's ImageDataGenerator pipeline and ours, training the same CNN.

Both runs of a pair start from the same seed (same initial weights, same dropout stream),
read the same files with the same split, augment training AND validation as the seed
does, and record per epoch the learning curves and wall time. A final un-augmented
evaluation of the validation subset gives each run's clean accuracy, since the seed's
augmented `val_accuracy` is noisy.
"""

import statistics
from typing import NamedTuple, Sequence

import keras

from rps_tfdata import pipeline, seed_reference, training

PIPELINES = ("seed_idg", "rps_tfdata")
CURVE_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds")


class ParityRun(NamedTuple):
    """One training run: which pipeline, which seed, its history and clean val accuracy."""

    pipeline: str
    seed: int
    history: dict[str, list[float]]
    clean_val_accuracy: float


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


def train_one(name: str, config: training.TrainConfig) -> ParityRun:
    """Trains the CNN for `config.epochs` on pipeline `name` ("seed_idg" or "rps_tfdata")."""
    keras.utils.set_random_seed(config.seed)
    data = training.load_data(config)
    train_ds, val_ds = _datasets(name, config, data)
    model = training.make_model(config, len(data.train.class_names))
    history = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        callbacks=[training.Throughput(len(data.train.paths))],
        verbose=training.fit_verbosity(),
        # The seed calls fit with its default shuffle=True; tf.data shuffles by itself.
        shuffle=name == "seed_idg",
    )
    clean = training.evaluate_split(model, data.validation, config.input)
    return ParityRun(name, config.seed, history.history, clean["accuracy"])


def train_side_by_side(
    data_dir: str,
    seeds: Sequence[int],
    *,
    epochs: int,
    image_size: int = 150,
    batch_size: int = 32,
) -> list[ParityRun]:
    """For each seed, trains the seed's pipeline and ours with the seed's settings."""
    runs = []
    for seed in seeds:
        config = training.TrainConfig(
            train_dir=data_dir,
            model_dir="",
            epochs=epochs,
            seed=seed,
            augment_validation=True,
            input=pipeline.PipelineOptions(
                image_size=(image_size, image_size), batch_size=batch_size
            ),
        )
        runs.extend(train_one(name, config) for name in PIPELINES)
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
