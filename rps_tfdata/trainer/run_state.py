"""Resume, in one place: what a run folder remembers between processes, and the rules a
rerun follows.

A rerun `claim`s the folder: a new folder (or `--overwrite`) trains from the start; the
same settings continue a killed run, continue a finished one to a larger `epochs`, or
report a finished one; other settings or changed images are refused by name.

The state is a `tf.train.Checkpoint` of the model, the optimizer (Adam's moments and step
count), the number of finished epochs, the best validation loss so far with its epoch,
the per-epoch history and, inside an epoch (`--checkpoint_every`), its finished steps,
running totals and dropout's generator states. `RunState.record_epoch` writes a finished
epoch in a fixed order: best weights (if it is the best), TensorBoard, the checkpoint,
then `history.csv` from the checkpointed history; a kill anywhere replays what followed
the last checkpoint (the epoch, or its steps since the last save inside it), which
computes the same values again. A checkpoint is written under a temporary prefix and
its files renamed into place, its index last (TensorFlow writes the index where it is
told, so a kill while it is written would leave half an index under the final name): a
save cut short leaves no `ckpt-N.index`, and is no checkpoint. The newest `KEEP` are
kept, and a restore tries them newest first, so a checkpoint damaged later (a full
disk, a truncated copy) costs what was trained since the one before it. Every random
thing in an epoch (order, augmentation, and dropout, reset by `reset_dropout` at the
epoch's start) is a function of (seed, epoch), so a replayed epoch is the same epoch.
"""

import contextlib
import csv
import io
import json
import math
import os
from typing import Any, Callable, Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from rps_tfdata.infra import atomic, fs
from rps_tfdata.infra.errors import CheckpointError, ConfigError
from rps_tfdata.trainer import artifacts, recipe
from rps_tfdata.trainer.config import MAY_CHANGE, TrainConfig
from rps_tfdata.trainer.loop import EpochProgress

NOTHING_SAVED = "nothing of the run is saved yet"  # how a stop's line says so
KEEP = 3  # checkpoints kept, so that a damaged newest one has an older one to fall back to
HISTORY_COLUMNS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "train_images_per_sec",
    "epoch_seconds",
    "peak_rss_mb",
    "unreadable_images",  # training files the epoch could not decode (since the last start)
    "learning_rate",  # the rate of the epoch's last step (--lr_schedule, --warmup_epochs)
)


class RunState:
    """The training state of one run, saved to and restored from its folder."""

    def __init__(
        self,
        folder: str,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        *,
        restore_from: Optional[str] = None,
        before_save: Callable[[], None] = lambda: None,
    ):
        """Saves to `folder`; restores from `restore_from` (default the same folder: a
        non-chief worker saves to its own scratch folder, restores from the chief's).
        `before_save` runs before anything is written (`run_lock.RunLock.check`)."""
        self.folder = folder
        self._before_save = before_save
        self._saved_variables = [*model.variables, *optimizer.variables]
        self._saved_at = (0, 0)  # (epoch, step) of the last checkpoint written or read
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        # Inside an epoch: its finished steps and running totals (zero at its boundaries).
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._totals = tf.Variable([0.0] * 4, dtype=tf.float64, trainable=False)
        self.best_val_loss = tf.Variable(math.inf, dtype=tf.float64, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._history = tf.Variable("[]", dtype=tf.string, trainable=False)
        checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            epoch=self.epoch,
            step=self.step,
            totals=self._totals,
            # Dropout's generators move with every step: inside an epoch, their state is
            # part of where the run is.
            dropout=[generator.state for generator in _seed_generators(model)],
            best_val_loss=self.best_val_loss,
            best_epoch=self.best_epoch,
            history=self._history,
        )
        self._checkpoint = checkpoint
        self._save_dir = os.path.join(folder, artifacts.CHECKPOINTS_FOLDER)
        self._restore_dir = os.path.join(restore_from or folder, artifacts.CHECKPOINTS_FOLDER)
        logs = os.path.join(folder, artifacts.LOGS_FOLDER)
        self._writers = {
            k: tf.summary.create_file_writer(os.path.join(logs, k)) for k in ("train", "validation")
        }

    @property
    def progress(self) -> EpochProgress:
        """Where the unfinished epoch is (step 0: at its start)."""
        loss_sum, correct, images, seconds = self._totals.numpy().tolist()
        return EpochProgress(int(self.step.numpy()), loss_sum, correct, images, seconds)

    def checkpoint_bytes(self) -> int:
        """About how many bytes one checkpoint of the run takes (its model's and its
        optimizer's variables)."""
        return sum(int(v.numpy().nbytes) for v in self._saved_variables)

    def saved_up_to(self) -> str:
        """Where the last checkpoint written or restored is, in words: "epoch 3" or
        "step 6 of epoch 4" (the run's variables may be past it: a save that failed)."""
        epoch, step = self._saved_at
        return f"step {step} of epoch {epoch + 1}" if step else f"epoch {epoch}"

    def saved_message(self) -> str:
        """What a rerun continues from, as the end of a message that stops the run."""
        if self._saved_at == (0, 0):
            return NOTHING_SAVED
        return f"the run is saved up to {self.saved_up_to()}"

    def _mark_saved(self) -> None:
        self._saved_at = (int(self.epoch.numpy()), int(self.step.numpy()))

    def save_progress(self, progress: EpochProgress) -> None:
        """A checkpoint inside the unfinished epoch, after `progress.step` steps."""
        self._before_save()
        self.step.assign(progress.step)
        self._totals.assign(list(progress[1:]))
        self._save()
        logging.info("saved the run at %s", self.saved_up_to())

    @property
    def history(self) -> list[dict[str, float]]:
        """One dict per finished epoch, in order."""
        return json.loads(self._history.numpy().decode())

    def restore(self) -> bool:
        """Restores the newest saved state that reads back whole; returns whether there
        was any saved state.

        Raises:
          CheckpointError: there are checkpoints, and none of them can be restored.
        """
        candidates = saved_checkpoints(self._restore_dir)
        for prefix in candidates:
            try:
                self._checkpoint.read(prefix).assert_existing_objects_matched()
                self._mark_saved()
                return True
            except Exception as e:  # a damaged file fails in many ways (DataLoss, Index...)
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                logging.warning("checkpoint %s cannot be restored (%s)", prefix, reason)
        if candidates:
            raise CheckpointError(
                f"no checkpoint in {self._restore_dir} can be restored (each is damaged; "
                "see the warnings above); pass --overwrite to train the run again from its start"
            )
        return False

    def record_epoch(self, row: dict[str, float], model: keras.Model) -> bool:
        """Records a finished epoch (see the module doc for the order); returns whether
        it is the best so far, whose weights are then in `best.weights.h5`."""
        self._before_save()
        improved = row["val_loss"] < float(self.best_val_loss.numpy())
        if improved:
            best = os.path.join(self.folder, artifacts.BEST_WEIGHTS_FILE)
            with atomic.writing_elsewhere_first(best) as path:
                model.save_weights(path)
            self.best_val_loss.assign(row["val_loss"])
            self.best_epoch.assign(row["epoch"])
        for name, writer in self._writers.items():
            prefix = "" if name == "train" else "val_"
            with writer.as_default(step=row["epoch"] - 1):
                tf.summary.scalar("epoch_loss", row[f"{prefix}loss"])
                tf.summary.scalar("epoch_accuracy", row[f"{prefix}accuracy"])
                if name == "train" and "learning_rate" in row:
                    tf.summary.scalar("epoch_learning_rate", row["learning_rate"])
            writer.flush()
        self._history.assign(json.dumps(self.history + [row]))
        self.epoch.assign_add(1)
        self.step.assign(0)
        self._totals.assign([0.0] * 4)
        self._save()
        write_history(self.folder, self.history)
        return improved

    def add_image(self, name: str, png: bytes) -> None:
        """A PNG in TensorBoard's validation run, at the last finished epoch."""
        image = tf.io.decode_png(png, channels=3)[tf.newaxis]
        writer = self._writers["validation"]
        with writer.as_default(step=max(int(self.epoch.numpy()) - 1, 0)):
            tf.summary.image(name, image)
        writer.flush()

    def _save(self) -> None:
        """Writes the state as the next checkpoint (see the module doc), then removes
        the oldest beyond `KEEP` and any temporary files of a save cut short."""
        folder = self._save_dir
        fs.makedirs(folder)
        saved = saved_checkpoints(folder)
        number = 1 + max((_number(prefix) for prefix in saved), default=0)
        _remove_partial(folder)  # a save cut short before: its space is needed now
        try:
            partial = self._checkpoint.write(os.path.join(folder, f".ckpt-{number}"))
        except (OSError, tf.errors.OpError):
            with contextlib.suppress(OSError, tf.errors.OpError):
                _remove_partial(folder)  # a full disk: leave the space to the next try
            raise
        final = os.path.join(folder, f"ckpt-{number}")
        for path in fs.glob(partial + ".data-*"):
            fs.rename(path, final + path[len(partial) :])
        fs.rename(partial + ".index", final + ".index")  # last: now it is a checkpoint
        self._mark_saved()
        for old in [final, *saved][KEEP:]:
            for path in [old + ".index", *fs.glob(old + ".data-*")]:
                fs.remove(path)


def write_history(folder: str, history: list[dict[str, float]]) -> None:
    """history.csv, rewritten whole from the checkpointed history (each epoch once)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic.write_text(os.path.join(folder, artifacts.HISTORY_FILE), text.getvalue())


def _seed_generators(model: keras.Model) -> list:
    return [sg for layer in model._flatten_layers() for sg in layer._seed_generators]


def reset_dropout(model: keras.Model, seed: int, epoch: int) -> None:
    """Sets every seed generator of `model` (dropout's) to a state of (seed, epoch) alone."""
    for k, generator in enumerate(_seed_generators(model)):
        state = np.random.SeedSequence([seed, epoch, k]).generate_state(1)[0] >> 1
        generator.state.assign(tf.constant([state, 0], generator.state.dtype))


def _remove_partial(folder: str) -> None:
    """The files (and TensorFlow's `_temp` folder) of a save that did not finish."""
    for stale in fs.glob(os.path.join(folder, ".ckpt-*")):
        if fs.isdir(stale):
            fs.rmtree(stale)
        else:
            fs.remove(stale)


def _number(prefix: str) -> int:
    return int(os.path.basename(prefix)[len("ckpt-") :])


def saved_checkpoints(folder: str) -> list[str]:
    """The checkpoint prefixes in `folder` whose index is in place, newest first (the
    index is renamed into place last, so a save cut short leaves none)."""
    numbers = []
    for name in fs.listdir(folder) if fs.isdir(folder) else []:
        stem = name.removesuffix(".index")
        if stem != name and stem.startswith("ckpt-") and stem[5:].isdigit():
            numbers.append(int(stem[5:]))
    return [os.path.join(folder, f"ckpt-{n}") for n in sorted(numbers, reverse=True)]


def read_settings(model_dir: str) -> Optional[dict[str, Any]]:
    """The settings a run in `model_dir` was started with, or None for a new folder."""
    path = os.path.join(model_dir, artifacts.RUN_CONFIG_FILE)
    if not fs.exists(path):
        return None
    with fs.open_file(path) as f:
        return json.load(f)


def write_settings(model_dir: str, settings: dict[str, Any]) -> None:
    atomic.write_json(os.path.join(model_dir, artifacts.RUN_CONFIG_FILE), settings)


def differing(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the settings (flag names) that differ, except those that may change. A
    setting a run recorded before it existed counts as its default, which that run used."""
    defaults = TrainConfig._field_defaults
    names = sorted((set(recorded) | set(current)) - set(MAY_CHANGE))
    return [n for n in names if recorded.get(n, defaults.get(n)) != current.get(n)]


def claim(
    model_dir: str, settings: dict[str, Any], epochs: int, *, overwrite: bool
) -> Optional[dict[str, Any]]:
    """Decides what this run does with its folder. Returns the stored metrics of a
    finished run with these settings (nothing to do), else None (train or continue).

    Raises:
      ConfigError: the folder holds another run (other settings or images, more epochs,
        or artifacts without settings), naming what differs.
    """
    recorded = read_settings(model_dir)
    if overwrite:
        artifacts.remove_run(model_dir)
        return None
    if recorded is None:
        if artifacts.holds_run(model_dir):
            raise ConfigError(
                f"--model_dir={model_dir} holds the artifacts of a run this version cannot "
                "continue (no run_config.json); pass --overwrite to replace them, or use "
                "another --model_dir"
            )
        return None
    changed = differing(recorded, settings)
    if "data_files" in changed:
        where = settings.get("data_dir") or "the official set"
        raise ConfigError(
            f"the image files under --data_dir={where} (or --test_dir) changed since the run "
            f"in {model_dir} started; pass --overwrite to train again on them, or use "
            "another --model_dir"
        )
    if changed:
        listing = ", ".join(f"--{n}={recorded.get(n)} (now {settings.get(n)})" for n in changed)
        raise ConfigError(
            f"--model_dir={model_dir} holds a run with other settings: {listing}; rerun "
            "with its settings to continue it, pass --overwrite to replace it, or use "
            "another --model_dir"
        )
    if recorded.get("lr_schedule") == "cosine" and recorded["epochs"] != epochs:
        raise ConfigError(
            f"--epochs={epochs}: the run in {model_dir} follows a cosine learning rate down "
            f"to 0 at the end of its --epochs={recorded['epochs']}, so it cannot be continued "
            "to another count; rerun with its --epochs, or train a new --model_dir"
        )
    done = artifacts.finished_metrics(model_dir)
    stopped_early = done and done.get("ended", "").startswith(recipe.EARLY_STOPPED)
    if stopped_early and epochs >= done["epochs_run"]:
        if epochs != recorded["epochs"]:
            logging.warning(
                "--epochs=%d does not continue the run in %s: it ended by %s", epochs, model_dir,
                done["ended"],
            )  # fmt: skip
        return done
    if done and epochs < done["epochs_run"]:
        raise ConfigError(
            f"--epochs={epochs} is fewer than the {done['epochs_run']} epochs the run in "
            f"{model_dir} already trained; pass --epochs={done['epochs_run']} or more"
        )
    return done if done and epochs == done["epochs_run"] else None
