"""The epochs of a training run: each trained and validated, recorded in the run's
folder, and ended by a stop request, a lost peer, divergence or early stopping.

`train_epochs` feeds every epoch from one pipeline across the epochs
(`inputs.training_batches`, distributed to the replicas) or from a tf.data service job
of its own, trains it (`loop.run_epoch`), checks it was whole, validates it on
un-augmented images (the seed's defect, `--augment_validation`, aside) and records it
(`RunState.record_epoch`: best weights, checkpoint, history).
"""

import contextlib
import itertools
import math
import os
from typing import Any, Callable, NamedTuple, Optional, Union

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata.infra.errors import DatasetLayoutError, TrainingStoppedError
from rps_tfdata.infra.resources import peak_rss_mb
from rps_tfdata.pipeline import passes
from rps_tfdata.trainer import (
    artifacts,
    distribution,
    evaluation,
    inputs,
    loop,
    recipe,
    run_state,
    tf_data_service,
)
from rps_tfdata.trainer.config import TrainConfig, profile_range
from rps_tfdata.trainer.datasets import Data
from rps_tfdata.trainer.plan import Plan


class Built(NamedTuple):
    """The seed's CNN, its optimizer and its compiled steps (`training.build`), with the recipe
    they follow."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    steps: loop.Steps
    rate: Union[float, recipe.LearningRate] = 0.0  # the optimizer's learning rate
    class_weights: Optional[list[float]] = None


class Training(NamedTuple):
    """A run in progress: what every step of the epochs reads."""

    config: TrainConfig
    plan: Plan
    data: Data
    built: Built
    stop_signal: Callable[[], str]  # the name of a signal that asks to stop, or ""
    state: run_state.RunState


def steps_per_epoch(plan: Plan, data: Data) -> int:
    """The steps of every epoch on every worker: the largest shard any worker can hold
    (its own readable files when alone), in batches of every local replica. With the
    tf.data service, the epochs' nominal length."""
    count = plan.worker.count
    shard = data.train.prepared.count if count == 1 else math.ceil(data.listed_train / count)
    return passes.batches_per_pass(
        passes.batches_per_pass(shard, plan.replica_batch), plan.local_replicas
    )


def _service_jobs(config: TrainConfig, plan: Plan, data: Data, start: int):
    """Yields each epoch's (batches, None) from the tf.data service: a new job per
    epoch, read until it ends."""
    prefix = tf_data_service.job_prefix()
    for epoch in range(start, config.epochs):
        dataset = inputs.epoch_batches(
            data.train, epoch, seed=config.seed, augmentation=plan.host_augmentation
        )
        job = f"{prefix}-{epoch}"
        compression = config.data_service_compression
        yield iter(tf_data_service.distribute(dataset, config.data_service, job, compression)), None


def _distributed_batches(config: TrainConfig, plan: Plan, data: Data, start: int, skip_steps: int):
    """This worker's training batches for epochs [start, epochs), one replica's share at
    a time, padded so that every worker takes the same steps; and the steps per epoch."""
    steps = steps_per_epoch(plan, data)

    def dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return inputs.training_batches(
            data.train,
            seed=config.seed,
            start_epoch=start,
            end_epoch=config.epochs,
            augmentation=plan.host_augmentation,
            batch_size=plan.replica_batch,
            batches_per_epoch=steps * plan.local_replicas,
            skip_batches=skip_steps * plan.local_replicas,  # each step takes one per replica
        )

    return iter(plan.strategy.distribute_datasets_from_function(dataset)), steps


def train_epochs(run: Training) -> None:
    """Trains from the state's epoch to `epochs`, recording each in the state's folder,
    unless early stopping ends the run first (decided from the history alone, so a
    restart after the deciding epoch trains no more)."""
    config, state = run.config, run.state
    start, resumed = int(state.epoch.numpy()), state.progress
    if early_stop(config, state.history):
        return
    if config.data_service:
        feeds = _service_jobs(config, run.plan, run.data, start)
    else:  # one pipeline across the epochs, each taking its steps in turn
        feeds = itertools.repeat(
            _distributed_batches(config, run.plan, run.data, start, resumed.step)
        )
    with _service_watch(config, state) as watch:
        for epoch in range(start, config.epochs):
            begin = resumed if epoch == start else loop.EPOCH_START
            if not begin.step:  # inside an epoch, dropout's state came with the checkpoint
                run_state.reset_dropout(run.built.model, config.seed, epoch)
            batches, num_steps = next(feeds)
            if watch is not None:
                batches = watch.feed(batches)
            try:
                row = _train_epoch(run, epoch, batches, num_steps, begin)
            except distribution.PEER_ERRORS as e:
                if run.plan.worker.count == 1:
                    raise
                raise _peer_lost(e, state) from e
            with watch.guard if watch is not None else contextlib.nullcontext():
                improved = state.record_epoch(row, run.built.model)
            _log_epoch(row, config.epochs, improved)
            stop = early_stop(config, state.history)
            if stop is not None:
                logging.info(
                    "early stopping after epoch %d of %d: %s",
                    stop.epoch,
                    config.epochs,
                    stop.reason,
                )
                return


def _peer_lost(error: Exception, state: run_state.RunState) -> TrainingStoppedError:
    """Another worker of the cluster gone or silent, in one line."""
    return TrainingStoppedError(
        f"{distribution.peer_of(error)} of the cluster is gone or silent "
        f"({distribution.failure_of(error)}); {state.saved_message()}: start every worker "
        "again with the same commands to continue"
    )


def early_stop(config: TrainConfig, history: list[dict[str, float]]) -> Optional[recipe.EarlyStop]:
    """Where early stopping ends this run, from its history (the same on every worker)."""
    return recipe.early_stop(
        history, config.early_stopping_patience, config.early_stopping_min_delta
    )


def _service_watch(config: TrainConfig, state: run_state.RunState):
    """With the tf.data service, a bound on every wait on it (`tf_data_service.ServiceWatch`);
    else nothing to watch (None)."""
    if not config.data_service:
        return contextlib.nullcontext(None)

    def then() -> str:
        return (
            f"{state.saved_message()}: rerun the same command "
            "once the service has a dispatcher and workers again"
        )

    return tf_data_service.watch_service(config.data_service, config.data_service_timeout, then)


def _unreadable_in_epoch(trained: loop.EpochResult, epoch: int, service: str) -> None:
    """Says how many of the epoch's images failed to decode (each was named as it was
    read); stops the run when none could be read."""
    where = "the tf.data service workers' logs" if service else "the lines above"
    if not trained.images:
        raise DatasetLayoutError(
            f"no training image of epoch {epoch + 1} could be decoded ({where} name "
            "them): check the data folder's files"
        )
    logging.warning(
        "epoch %d: %d training image(s) could not be decoded and were left out of their "
        "steps (named in %s); fix or remove them, or pass --on_bad_image=fail to check "
        "every file before training",
        epoch + 1,
        trained.unreadable,
        where,
    )


def _profile_in(run: Training, epoch: int, steps_in_epoch: int) -> Optional[loop.ProfileWindow]:
    """`--profile_steps` in this epoch, written by the chief into MODEL_DIR/logs."""
    span = profile_range(run.config.profile_steps)
    if span is None or not run.plan.worker.is_chief:
        return None
    folder = os.path.join(run.config.model_dir, artifacts.LOGS_FOLDER)
    return loop.profile_window(span, epoch, steps_in_epoch, folder)


def _train_epoch(
    run: Training, epoch: int, batches, num_steps, begin: loop.EpochProgress
) -> dict[str, float]:
    """Trains and validates one epoch on `batches` (`num_steps` of them, or None: until
    they end), from `begin` (where a resumed epoch was saved); returns its history row.

    Raises:
      TrainingStoppedError: a signal, a short epoch from the service, or divergence.
    """
    config, data = run.config, run.data
    logging.info("epoch %d/%d started", epoch + 1, config.epochs)
    controls = loop.EpochControls(
        steps_per_loop=config.steps_per_loop,
        save_every=config.checkpoint_every,
        # A service epoch cannot start inside itself: a stop there keeps the last epoch.
        save=None if config.data_service else run.state.save_progress,
        stop_signal=run.stop_signal,
        profile=_profile_in(run, epoch, num_steps or inputs.batch_count(data.train)),
        progress=loop.progress_bar(num_steps) if num_steps else None,
    )
    trained = _trained_whole(
        run, epoch, loop.run_epoch(run.built.steps, batches, num_steps, controls, begin)
    )
    validation = _validate(run, epoch)
    if not (math.isfinite(trained.loss) and math.isfinite(validation["loss"])):
        raise _diverged(epoch + 1, run.state, config)
    return {
        "epoch": epoch + 1,
        "loss": trained.loss,
        "accuracy": trained.accuracy,
        "val_loss": validation["loss"],
        "val_accuracy": validation["accuracy"],
        "train_images_per_sec": trained.images / trained.seconds,
        "epoch_seconds": trained.seconds,
        "peak_rss_mb": peak_rss_mb(),
        "unreadable_images": trained.unreadable,
        "learning_rate": recipe.rate_after(
            run.built.rate, int(run.built.optimizer.iterations.numpy())
        ),
    }


def _trained_whole(
    run: Training, epoch: int, trained: Optional[loop.EpochResult]
) -> loop.EpochResult:
    """The epoch `loop.run_epoch` trained, once it is known to be whole.

    Raises:
      TrainingStoppedError: a stop request ended it (None), or the tf.data service
        delivered fewer images than the split holds.
    """
    if trained is None:
        who = run.stop_signal() or "a stop request on another worker"
        raise TrainingStoppedError(
            f"stopped by {who} in epoch {epoch + 1}; "
            f"{run.state.saved_message()}: rerun the same command to continue from there"
        )
    if trained.unreadable:
        _unreadable_in_epoch(trained, epoch, run.config.data_service)
    total = run.data.train.prepared.count
    if run.config.data_service and trained.images + trained.unreadable != total:
        raise TrainingStoppedError(
            f"the tf.data service delivered {trained.images + trained.unreadable} of the "
            f"{total} training images in epoch {epoch + 1} (did a worker stop?); "
            f"{run.state.saved_message()}: rerun to continue from there"
        )
    return trained


def _validate(run: Training, epoch: int) -> dict[str, Any]:
    """This epoch's validation (augmented with this epoch's seeds when the seed's defect is on)."""
    config = run.config
    validation = inputs.evaluation_batches(
        run.data.validation,
        augmentation=run.plan.host_augmentation if config.augment_validation else None,
        seed=config.seed,
        epoch=epoch,
    )
    probabilities, labels = evaluation.predict_all(run.built.steps.predict, validation)
    return evaluation.scores(probabilities, labels, len(run.data.class_names))


def _log_epoch(row: dict[str, float], total: int, improved: bool) -> None:
    print(
        f"epoch {row['epoch']}/{total}: loss {row['loss']:.4f}, accuracy {row['accuracy']:.4f}, "
        f"val_loss {row['val_loss']:.4f}, val_accuracy {row['val_accuracy']:.4f} "
        f"({row['epoch_seconds']:.1f} s, {row['train_images_per_sec']:.1f} images/s)"
        + (" - best so far, weights saved" if improved else ""),
        flush=True,
    )


def _diverged(epoch: int, state: run_state.RunState, config: TrainConfig) -> TrainingStoppedError:
    kept = (
        f"the best weights so far (epoch {int(state.best_epoch.numpy())}) are kept in "
        f"{os.path.join(state.folder, artifacts.BEST_WEIGHTS_FILE)}"
        if int(state.best_epoch.numpy())
        else "no epoch finished, so no weights were kept"
    )
    return TrainingStoppedError(
        f"training diverged: the loss is not finite in epoch {epoch}; {kept}. Lower "
        f"--learning_rate (now {config.learning_rate}) and train into a new --model_dir"
    )
