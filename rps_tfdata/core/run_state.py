"""What a run folder remembers between processes: its settings and its training state.

The state is a `tf.train.Checkpoint` of the model, the optimizer (Adam's moments and step
count), the number of finished epochs, the best validation loss so far with its epoch,
and the per-epoch history. It is saved after every epoch; `CheckpointManager` writes the
new checkpoint's files before it points its index at them, so a kill at any moment leaves
the previous epoch's state readable. The last `KEEP` checkpoints are kept, and a restore
tries them newest first, found by their own files rather than by the index: a damaged
checkpoint (a full disk, a truncated copy) costs the epochs since the one before it.
The settings (`run_config.json`) let a rerun tell a continuation of this run from
another run aimed at the same folder.
"""

import json
import math
import os
from typing import Any, Optional

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata.core import files
from rps_tfdata.core.artifacts import CHECKPOINTS, RUN_CONFIG
from rps_tfdata.core.errors import CheckpointError

# Settings that change how fast a run goes (or how long it waits), never what it computes.
SPEED_ONLY = (
    "image_cache",
    "parallel_calls",
    "threadpool_size",
    "prefetch",
    "data_service_timeout",
)
KEEP = 3  # checkpoints kept, so that a damaged newest one has an older one to fall back to


class RunState:
    """The training state of one run, saved to and restored from its model folder."""

    def __init__(
        self,
        model_dir: str,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        *,
        restore_from: Optional[str] = None,
    ):
        """Saves to `model_dir`; restores from `restore_from` (default the same folder:
        a non-chief worker saves to its own scratch folder, restores from the chief's)."""
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best_val_loss = tf.Variable(math.inf, dtype=tf.float64, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._history = tf.Variable("[]", dtype=tf.string, trainable=False)
        checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            epoch=self.epoch,
            best_val_loss=self.best_val_loss,
            best_epoch=self.best_epoch,
            history=self._history,
        )
        self._manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(model_dir, CHECKPOINTS), max_to_keep=KEEP
        )
        self._restore_dir = os.path.join(restore_from or model_dir, CHECKPOINTS)

    @property
    def history(self) -> list[dict[str, float]]:
        """One dict per finished epoch, in order."""
        return json.loads(self._history.numpy().decode())

    def record_epoch(self, row: dict[str, float]) -> None:
        """Appends a finished epoch to the history and counts it."""
        self._history.assign(json.dumps(self.history + [row]))
        self.epoch.assign_add(1)

    def restore(self) -> bool:
        """Restores the newest saved state that reads back whole; returns whether there
        was any saved state.

        Raises:
          CheckpointError: there are checkpoints, and none of them can be restored.
        """
        candidates = saved_checkpoints(self._restore_dir)
        for prefix in candidates:
            try:
                self._manager.checkpoint.read(prefix).assert_existing_objects_matched()
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

    def save(self) -> None:
        self._manager.save(checkpoint_number=int(self.epoch.numpy()))


def saved_checkpoints(folder: str) -> list[str]:
    """The checkpoint prefixes in `folder` whose index file was written, newest first
    (the index is written last, so a save cut short leaves none)."""
    numbers = []
    for name in tf.io.gfile.listdir(folder) if tf.io.gfile.isdir(folder) else []:
        stem = name.removesuffix(".index")
        if stem != name and stem.startswith("ckpt-") and stem[5:].isdigit():
            numbers.append(int(stem[5:]))
    return [os.path.join(folder, f"ckpt-{n}") for n in sorted(numbers, reverse=True)]


def read_settings(model_dir: str) -> Optional[dict[str, Any]]:
    """The settings a run in `model_dir` was started with, or None for a new folder."""
    path = os.path.join(model_dir, RUN_CONFIG)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_settings(model_dir: str, settings: dict[str, Any]) -> None:
    files.write_json(os.path.join(model_dir, RUN_CONFIG), settings)


def differing(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the settings (flag names) that differ, except epochs and speed-only ones."""
    ignored = {"epochs", *SPEED_ONLY}
    names = sorted((set(recorded) | set(current)) - ignored)
    return [n for n in names if recorded.get(n) != current.get(n)]
