"""Training and final evaluation of the seed's CNN: the whole job as one library call.

`train_and_evaluate` resolves the run's plan, opens its data source, claims the model
folder (`run_state.claim`: continue, report or refuse), reads every image once, trains
epoch by epoch with a checkpoint after each, keeps the weights with the best validation
loss (as the seed meant to), and writes the run's artifacts.
"""

import contextlib
import errno
import hashlib
import math
import os
import re
import shutil
import statistics
import tempfile
from typing import Any, Callable, Iterator, NamedTuple, Optional, Union

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata.core import (
    artifacts,
    atomic,
    datasets,
    distribution,
    evaluation,
    fs,
    headers,
    input_pipeline,
    loop,
    plots,
    recipe,
    run_lock,
    run_state,
    saved_model,
    stopping,
    tf_data_service,
)
from rps_tfdata.core import model as model_lib
from rps_tfdata.core.config import TrainConfig, profile_range, settings_of
from rps_tfdata.core.datasets import Data
from rps_tfdata.core.errors import DatasetLayoutError, TrainingStoppedError
from rps_tfdata.core.plan import Plan, make_plan
from rps_tfdata.core.resources import peak_rss_mb


class Built(NamedTuple):
    """The seed's CNN, its optimizer and its compiled steps (`build`), with the recipe
    they follow."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    steps: loop.Steps
    rate: Union[float, recipe.LearningRate] = 0.0  # the optimizer's learning rate
    class_weights: Optional[list[float]] = None


class _Training(NamedTuple):
    """A run in progress: what every step of the epochs reads."""

    config: TrainConfig
    plan: Plan
    data: Data
    built: Built
    stop_signal: Callable[[], str]  # the name of a signal that asks to stop, or ""
    state: Optional[run_state.RunState] = None  # where the run is saved (None: not yet)


def train_and_evaluate(
    config: TrainConfig, *, overwrite: bool = False, flags_text: Optional[str] = None
) -> dict[str, Any]:
    """Trains (or continues, or reports) the run in `config.model_dir`.

    Args:
      overwrite: replace a run of other settings in the folder instead of refusing.
      flags_text: the command's flags as a flagfile, written as `flags.txt` once the
        folder is known to be this run's.

    Returns:
      The metrics also written to `metrics.json` (a non-chief worker: what it trained).
    """
    plan = make_plan(config)
    atomic.check_writable(config.model_dir, "--model_dir")
    source = datasets.open_source(config, plan.input)
    settings = {**settings_of(config), "data_files": source.fingerprint()}
    chief = plan.worker.is_chief
    # Only the chief writes the folder; the other workers share it with the chief.
    others = contextlib.nullcontext(run_lock.RunLock(config.model_dir))
    with run_lock.locked(config.model_dir) if chief else others as held:
        stored = run_state.claim(
            config.model_dir, settings, config.epochs, overwrite=overwrite and chief
        )
        if stored is not None:
            logging.info("%s already holds this finished run; nothing to train", config.model_dir)
            return stored
        state: Optional[run_state.RunState] = None  # set once the folder is this run's
        with stopping.stop_requests() as stop_signal, _storage_holds(config, lambda: state):
            keras.utils.set_random_seed(config.seed)
            data = source.load(plan.worker)
            built = build(config, plan, len(data.class_names), data)
            run = _Training(config, plan, data, built, stop_signal)
            if not chief:
                return _train_as_worker(run)
            # The folder becomes this run's only now that its data is known to be usable.
            run_state.write_settings(config.model_dir, settings)
            if flags_text is not None:
                atomic.write_text(os.path.join(config.model_dir, artifacts.FLAGS_FILE), flags_text)
            state = run_state.RunState(
                config.model_dir, built.model, built.optimizer, before_save=held.check
            )
            if state.restore():
                logging.info(
                    "continuing the run in %s after %s", config.model_dir, state.saved_up_to()
                )
            run = run._replace(state=state)
            _train_epochs(run)
            return _finish(run)


def build(config: TrainConfig, plan: Plan, num_classes: int, data: Optional[Data] = None) -> Built:
    """The seed's CNN and Adam, built in the plan's strategy scope, and the compiled
    steps, with the augmentation inside the train step when the plan puts it on the
    device. The recipe's schedule and class weights need the run's `data` (without it:
    the constant rate, no weights)."""
    rate = config.learning_rate
    if data:
        rate = recipe.learning_rate(
            rate, config.lr_schedule, config.warmup_epochs, config.epochs,
            _steps_per_epoch(plan, data),
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
    return Built(model, optimizer, steps, rate, weights)


def _steps_per_epoch(plan: Plan, data: Data) -> int:
    """The steps of every epoch on every worker: the largest shard any worker can hold
    (its own readable files when alone), in batches of every local replica. With the
    tf.data service, the epochs' nominal length."""
    count = plan.worker.count
    shard = len(data.train.paths) if count == 1 else math.ceil(data.listed_train / count)
    return math.ceil(math.ceil(shard / plan.replica_batch) / plan.local_replicas)


def _epoch_feeds(config: TrainConfig, plan: Plan, data: Data, start: int, skip_steps: int):
    """Yields each epoch's (batches, steps): one distributed pipeline across the epochs
    (the first `skip_steps` steps of epoch `start` left out: trained before a resume), or
    with the tf.data service one job per epoch, run until it ends (steps None)."""
    if not config.data_service:
        batches, steps = _distributed_batches(config, plan, data, start, skip_steps)
        while True:
            yield batches, steps
    prefix = tf_data_service.job_prefix()
    for epoch in range(start, config.epochs):
        dataset = input_pipeline.epoch_batches(
            data.train, epoch, seed=config.seed, augmentation=plan.host_augmentation
        )
        job = f"{prefix}-{epoch}"
        compression = config.data_service_compression
        yield iter(tf_data_service.distribute(dataset, config.data_service, job, compression)), None


def _distributed_batches(config: TrainConfig, plan: Plan, data: Data, start: int, skip_steps: int):
    """This worker's training batches for epochs [start, epochs), one replica's share at
    a time, padded so that every worker takes the same steps; and the steps per epoch."""
    steps = _steps_per_epoch(plan, data)

    def dataset(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return input_pipeline.training_batches(
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


def _train_epochs(run: _Training) -> None:
    """Trains from the state's epoch to `epochs`, recording each in the state's folder,
    unless early stopping ends the run first (decided from the history alone, so a
    restart after the deciding epoch trains no more)."""
    config, state = run.config, run.state
    start, resumed = int(state.epoch.numpy()), state.progress
    if _early_stop(config, state.history):
        return
    feeds = _epoch_feeds(config, run.plan, run.data, start, resumed.step)
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
                raise TrainingStoppedError(
                    f"{distribution.peer_of(e)} of the cluster is gone or silent "
                    f"({distribution.failure_of(e)}); "
                    f"{state.saved_message()}: start every worker again with the same commands "
                    "to continue"
                ) from e
            with watch.guard if watch is not None else contextlib.nullcontext():
                improved = state.record_epoch(row, run.built.model)
            _log_epoch(row, config.epochs, improved)
            stop = _early_stop(config, state.history)
            if stop is not None:
                logging.info(
                    "early stopping after epoch %d of %d: %s",
                    stop.epoch,
                    config.epochs,
                    stop.reason,
                )
                return


def _early_stop(config: TrainConfig, history: list[dict[str, float]]) -> Optional[recipe.EarlyStop]:
    """Where early stopping ends this run, from its history (the same on every worker)."""
    return recipe.early_stop(
        history, config.early_stopping_patience, config.early_stopping_min_delta
    )


# What TensorFlow's client says of a bucket it gave up on (after its retries).
_GAVE_UP = ("retry attempts failed", "Error executing an HTTP request")


@contextlib.contextmanager
def _storage_holds(
    config: TrainConfig, saved: Callable[[], Optional[run_state.RunState]]
) -> Iterator[None]:
    """The run's storage failing under it (a bucket that stops answering, a disk that
    fills) ends it with one line naming the place and what is saved (the run's state
    `saved` returns, once it has one). A save cut short is no checkpoint (`run_state`), and
    every artifact is written under a temporary name, so what was saved before stays
    whole and the rerun continues from it."""
    try:
        yield
    except (OSError, tf.errors.OpError) as e:
        message = e.message if isinstance(e, tf.errors.OpError) else str(e)
        state = saved()
        where = state.saved_message() if state else "nothing of the run is saved yet"
        stop = _bucket_stop(config, message, where) or _full_disk_stop(config, e, state, where)
        if stop is None:
            raise
        raise stop from e


def _bucket_stop(config: TrainConfig, message: str, where: str) -> Optional[TrainingStoppedError]:
    """A bucket of the run's that TensorFlow's client gave up on (after its retries:
    `GCS_RETRY_CONFIG_*`), in one line; None for another failure."""
    roots = [fs.root(p) for p in (config.model_dir, config.data_dir, config.test_dir)]
    roots = [root for root in roots if root]
    if not roots or not any(sign in message for sign in _GAVE_UP):
        return None
    bucket = next((root for root in roots if root in message), roots[0])
    found = re.search(r"All \d+ retry attempts failed.*?(?= when |$)", " ".join(message.split()))
    reason = found.group(0) if found else message.strip().splitlines()[0]
    return TrainingStoppedError(
        f"{bucket} stopped answering ({reason}); {where}: rerun the same command once it answers"
    )


def _full_disk_stop(
    config: TrainConfig, error: Exception, state: Optional[run_state.RunState], where: str
) -> Optional[TrainingStoppedError]:
    """The run's folder's disk full, in one line with the room a save takes; None for
    another failure."""
    message = str(error)
    full = getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in message
    if not full or fs.is_remote(config.model_dir):
        return None
    free = shutil.disk_usage(fs.local(config.model_dir)).free / 2**20
    needs = (
        f"a checkpoint of this run takes about {state.checkpoint_bytes() / 2**20:.1f} MB and "
        if state
        else ""
    )
    return TrainingStoppedError(
        f"the disk of --model_dir={config.model_dir} is full (No space left on device); "
        f"{needs}{free:.1f} MB are free: free some space and rerun the same command; {where}"
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


def _profile_in(run: _Training, epoch: int, steps_in_epoch: int) -> Optional[loop.ProfileWindow]:
    """`--profile_steps` in this epoch, written by the chief into MODEL_DIR/logs."""
    span = profile_range(run.config.profile_steps)
    if span is None or not run.plan.worker.is_chief:
        return None
    folder = os.path.join(run.config.model_dir, artifacts.LOGS_FOLDER)
    return loop.profile_window(span, epoch, steps_in_epoch, folder)


def _train_epoch(
    run: _Training, epoch: int, batches, num_steps, begin: loop.EpochProgress
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
        profile=_profile_in(run, epoch, num_steps or input_pipeline.steps_per_epoch(data.train)),
        progress=loop.progress_bar(num_steps) if num_steps else None,
    )
    trained = loop.run_epoch(run.built.steps, batches, num_steps, controls, begin)
    if trained is None:
        who = run.stop_signal() or "a stop request on another worker"
        raise TrainingStoppedError(
            f"stopped by {who} in epoch {epoch + 1}; "
            f"{run.state.saved_message()}: rerun the same command to continue from there"
        )
    if trained.unreadable:
        _unreadable_in_epoch(trained, epoch, config.data_service)
    if config.data_service and trained.images + trained.unreadable != len(data.train.paths):
        raise TrainingStoppedError(
            f"the tf.data service delivered {trained.images + trained.unreadable} of the "
            f"{len(data.train.paths)} training images in epoch {epoch + 1} (did a worker "
            f"stop?); {run.state.saved_message()}: rerun to continue "
            "from there"
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


def _validate(run: _Training, epoch: int) -> dict[str, Any]:
    """This epoch's validation (augmented with this epoch's seeds when the seed's defect is on)."""
    config = run.config
    batches = input_pipeline.evaluation_batches(
        run.data.validation,
        augmentation=run.plan.host_augmentation if config.augment_validation else None,
        seed=config.seed,
        epoch=epoch,
    )
    probabilities, labels = evaluation.predict_all(run.built.steps.predict, batches)
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
        "num_train_images": len(data.train.paths),
        "num_validation_images": len(data.validation.paths),
        "num_test_images": len(data.test.paths) if data.test else 0,
        "skipped_images": headers.as_records(data.skipped()),
    }


def _undecodable(run: _Training) -> list[headers.BadImage]:
    """The training files the epochs could not decode, named for metrics.json by one
    decode pass over this worker's shard, run only when an epoch met such a file."""
    if run.data.train.decoded or not any(row.get("unreadable_images") for row in run.state.history):
        return []
    logging.info("naming the training files that failed to decode (one decode pass)")
    return input_pipeline.undecodable(run.data.train)


def _finish(run: _Training) -> dict[str, Any]:
    """Writes the model with the best weights and the training metrics first, then adds
    the final evaluation, so a failure there loses nothing already trained."""
    model_dir, model, data, options = (
        run.config.model_dir,
        run.built.model,
        run.data,
        run.plan.input,
    )
    final_digest = weights_digest(model)
    model.load_weights(os.path.join(model_dir, artifacts.BEST_WEIGHTS_FILE))
    with atomic.writing_elsewhere_first(
        os.path.join(model_dir, artifacts.FINAL_MODEL_FILE)
    ) as path:
        model.save(path)
    atomic.write_json(os.path.join(model_dir, artifacts.CLASS_NAMES_FILE), data.class_names)
    artifacts.write_preprocessing(model_dir, options)
    finished = artifacts.Run(model, data.class_names, options)
    saved_model.write(finished, saved_model.default_dir(model_dir))
    if data.test:  # screened at the start, decoded only now (a restart reads it no sooner)
        data = data._replace(test=input_pipeline.decoded_now(data.test))
    metrics = run_metrics(run.state.history, data)
    metrics["skipped_images"] += headers.as_records(_undecodable(run))
    metrics["final_weights_sha256"] = final_digest
    metrics.update(_recipe_facts(run))
    metrics_path = os.path.join(model_dir, artifacts.METRICS_FILE)
    atomic.write_json(metrics_path, {**metrics, "finished": False})
    result = None
    for name, split in (("val", data.validation), ("test", data.test)):
        if split:
            result = evaluation.evaluate_prepared(run.built.steps.predict, split, data.class_names)
            metrics[f"{name}_accuracy"] = result["accuracy"]
            metrics[f"{name}_loss"] = result["loss"]
            metrics[f"{name}_report"] = {key: result[key] for key in evaluation.REPORT}
            logging.info("%s set:\n%s", name, evaluation.format_report(result))
    _draw(run, result, "test set" if data.test else "validation set")
    metrics["finished"] = True
    atomic.write_json(metrics_path, metrics)
    logging.info(
        "best epoch %d of %d; metrics in %s",
        metrics["best_epoch"],
        metrics["epochs_run"],
        metrics_path,
    )
    return metrics


def _draw(run: _Training, last: dict[str, Any], which: str) -> None:
    """The learning curves and the confusion matrix of `last` (the `which` set's
    evaluation) as PNGs in the run folder, the matrix in TensorBoard too; without
    matplotlib, a line saying how to get them."""
    model_dir = run.config.model_dir
    if not plots.available():
        logging.info("no plots in %s: pip install 'rps_tfdata[plots]' (matplotlib)", model_dir)
        return
    curves = plots.learning_curves(run.state.history)
    atomic.write_bytes(os.path.join(model_dir, artifacts.HISTORY_PLOT_FILE), curves)
    title = f"{which}: accuracy {last['accuracy']:.4f}"
    matrix = plots.confusion_matrix(last["confusion_matrix"], last["class_names"], title)
    atomic.write_bytes(os.path.join(model_dir, artifacts.CONFUSION_PLOT_FILE), matrix)
    run.state.add_image("confusion_matrix", matrix)


def _recipe_facts(run: _Training) -> dict[str, Any]:
    """How the run ended (its last epoch or early stopping, and why), and the class
    weights it trained with: what metrics.json says of the recipe."""
    stop = _early_stop(run.config, run.state.history)
    facts: dict[str, Any] = {
        "ended": f"{recipe.EARLY_STOPPED} after epoch {stop.epoch}: {stop.reason}"
        if stop
        else f"after --epochs={run.config.epochs}"
    }
    if run.built.class_weights:
        names = run.data.class_names
        facts["class_weights"] = dict(zip(names, run.built.class_weights, strict=True))
    return facts


def _train_as_worker(run: _Training) -> dict[str, Any]:
    """A non-chief worker: the same steps as the chief (collectives need every worker),
    restored from the chief's checkpoint, but its state recorded in a temporary folder
    that is removed at the end. Returns what it trained: epochs and the weights' digest."""
    model, optimizer = run.built.model, run.built.optimizer
    scratch = tempfile.mkdtemp(prefix=f"rps_tfdata_worker{run.plan.worker.index}_")
    try:
        restore_from = run.config.model_dir
        state = run_state.RunState(scratch, model, optimizer, restore_from=restore_from)
        state.restore()
        _train_epochs(run._replace(state=state))
        return {"epochs_run": len(state.history), "final_weights_sha256": weights_digest(model)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def weights_digest(model: keras.Model) -> str:
    """sha256 of the model's weights, to show two workers (or runs) ended identical."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return digest.hexdigest()
