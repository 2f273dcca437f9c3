"""Training and final evaluation of the seed's CNN: the whole job as one library call.

`train_and_evaluate` reads as the run goes: the data source, the plan, the run's folder
(`run_folder`: continue, report or refuse), the data read once, the model built
(`build`), the epochs (`epochs`: a checkpoint after each; the weights with the best
validation loss kept, as the seed meant to) and the run's end (`run_end`: the artifacts
and the final evaluation).
"""

from typing import Any, NamedTuple, Optional, Union

import keras
from absl import logging

from rps_tfdata.infra import atomic
from rps_tfdata.trainer import datasets, epochs, loop, recipe, run_end, run_folder, stopping
from rps_tfdata.trainer import model as model_lib
from rps_tfdata.trainer.config import TrainConfig, settings_of
from rps_tfdata.trainer.datasets import Data
from rps_tfdata.trainer.plan import Plan, make_plan


class WorkerResult(NamedTuple):
    """What a worker other than the chief trained; the chief writes the run."""

    epochs_run: int
    final_weights_sha256: str


def train_and_evaluate(
    config: TrainConfig, *, overwrite: bool = False, flags_text: Optional[str] = None
) -> Union[dict[str, Any], WorkerResult]:
    """Trains (or continues, or reports) the run in `config.model_dir`.

    Args:
      config: the run's settings.
      overwrite: replace a run of other settings in the folder instead of refusing.
      flags_text: the command's flags as a flagfile, written as `flags.txt` once the
        folder is known to be this run's.

    Returns:
      The chief: the metrics also written to `metrics.json`. Another worker of a
      multi-worker run: what it trained (`WorkerResult`).

    Raises:
      ConfigError: settings that cannot work, or a folder that holds another run.
      TrainingStoppedError: the run stopped (a signal, storage, a peer, divergence),
        saying what is saved and what to do.
    """
    atomic.check_writable(config.model_dir, "--model_dir")  # before a download or a listing
    source = datasets.open_source(config)
    plan = make_plan(config, image_counts=source.image_counts)
    settings = {**settings_of(config), "data_files": source.fingerprint()}
    opened = run_folder.opened(config, plan.worker, settings, overwrite=overwrite)
    with opened as folder, stopping.stop_requests() as stop_signal:
        if folder.finished is not None:
            logging.info("%s already holds this finished run; nothing to train", config.model_dir)
            return folder.finished
        keras.utils.set_random_seed(config.seed)
        data = source.load(plan.worker, plan.input)
        built = build(config, plan, len(data.class_names), data)
        state = folder.start(built.model, built.optimizer, flags_text)
        run = epochs.Training(config, plan, data, built, stop_signal, state)
        epochs.train_epochs(run)
        return _finish(run)


def _finish(run: epochs.Training) -> Union[dict[str, Any], WorkerResult]:
    """The chief writes the run's end (`run_end.finish`); another worker says what it
    trained."""
    model = run.built.model
    if not run.plan.worker.is_chief:
        return WorkerResult(len(run.state.history), run_end.weights_digest(model))
    return run_end.finish(
        run.config,
        run.plan.input,
        run.data,
        run.state,
        model,
        run.built.steps.predict,
        early_stop=epochs.early_stop(run.config, run.state.history),
        class_weights=run.built.class_weights,
    )


def build(
    config: TrainConfig, plan: Plan, num_classes: int, data: Optional[Data] = None
) -> epochs.Built:
    """The seed's CNN and Adam, built in the plan's strategy scope, and the compiled
    steps, with the augmentation inside the train step when the plan puts it on the
    device. The recipe's schedule and class weights need the run's `data` (without it:
    the constant rate, no weights)."""
    rate = config.learning_rate
    if data:
        rate = recipe.learning_rate(
            rate, config.lr_schedule, config.warmup_epochs, config.epochs,
            epochs.steps_per_epoch(plan, data),
        )  # fmt: skip
    weights = recipe.class_weights(config.class_weight, data.listed_per_class) if data else None
    if weights:
        named = ", ".join(f"{n} {w:.3f}" for n, w in zip(data.class_names, weights, strict=True))
        logging.info("class weights (--class_weight=%s): %s", config.class_weight, named)
    with plan.strategy.scope():
        model = model_lib.build_model(
            (config.image_size, config.image_size), num_classes, precision=config.mixed_precision
        )
        optimizer = model_lib.make_optimizer(learning_rate=rate, precision=config.mixed_precision)
        optimizer.build(model.trainable_variables)
    steps = loop.make_steps(
        model,
        optimizer,
        strategy=plan.strategy,
        augmentation=plan.device_augmentation,
        jit_compile=plan.xla,
        loss=loop.TrainingLoss(config.label_smoothing, weights),
    )
    return epochs.Built(model, optimizer, steps, rate, weights)
