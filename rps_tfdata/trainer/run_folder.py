"""The model folder through one training run, whatever this worker's role.

The chief holds the folder (`run_lock.locked`) from before it reads it until the run
ends, claims it (`run_state.claim`: continue, report a finished run, or refuse another
run's folder), and makes it this run's only once the data is known to be usable
(`RunFolder.start`: the settings, `flags.txt`, the state restored). Another worker of a
multi-worker run shares the chief's folder without writing to it: it restores from the
chief's checkpoint and records its own state in a scratch folder, removed at the end.
Storage that fails under the run ends it with one line (`storage_failures`).
"""

import contextlib
import os
import shutil
import tempfile
from typing import Any, Iterator, Optional

import keras
from absl import logging

from rps_tfdata.infra import atomic
from rps_tfdata.trainer import artifacts, run_lock, run_state, storage_failures
from rps_tfdata.trainer.config import TrainConfig
from rps_tfdata.trainer.distribution import Worker


class RunFolder:
    """This worker's view of the run's folder: what it held when the run began
    (`finished`), and the run's state once `start` made the folder this run's."""

    def __init__(
        self,
        config: TrainConfig,
        worker: Worker,
        settings: dict[str, Any],
        lock: Optional[run_lock.RunLock],
        finished: Optional[dict[str, Any]],
    ):
        self.config = config
        self.worker = worker
        self.settings = settings
        self.finished = finished  # the stored metrics of this finished run, else None
        self.state: Optional[run_state.RunState] = None
        self._lock = lock
        self._scratch: Optional[str] = None

    def start(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        flags_text: Optional[str] = None,
    ) -> run_state.RunState:
        """Makes the folder this run's and returns its state, restored from the last save.

        Args:
          model: the run's model, built in the plan's strategy scope.
          optimizer: its built optimizer.
          flags_text: the command's flags as a flagfile, written as `flags.txt`.

        Returns:
          The chief's state in the run's folder; another worker's in its scratch folder,
          restored from the chief's checkpoint.
        """
        model_dir = self.config.model_dir
        if not self.worker.is_chief:
            prefix = f"rps_tfdata_worker{self.worker.index}_"
            self._scratch = tempfile.mkdtemp(prefix=prefix)
            self.state = run_state.RunState(self._scratch, model, optimizer, restore_from=model_dir)
            self.state.restore()
            return self.state
        run_state.write_settings(model_dir, self.settings)
        if flags_text is not None:
            atomic.write_text(os.path.join(model_dir, artifacts.FLAGS_FILE), flags_text)
        self.state = run_state.RunState(model_dir, model, optimizer, before_save=self._lock.check)
        if self.state.restore():
            logging.info("continuing the run in %s after %s", model_dir, self.state.saved_up_to())
        return self.state

    def saved_message(self) -> str:
        """What a rerun continues from, as the end of a message that stops the run."""
        return self.state.saved_message() if self.state else run_state.NOTHING_SAVED

    def _remove_scratch(self) -> None:
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


@contextlib.contextmanager
def opened(
    config: TrainConfig, worker: Worker, settings: dict[str, Any], *, overwrite: bool = False
) -> Iterator[RunFolder]:
    """The run's folder for the duration of the block: held and claimed by the chief,
    shared by the other workers; storage failures inside the block end the run with one
    line naming the place and what is saved.

    Args:
      config: the run's settings (`model_dir`, and the data folders a failure may name).
      worker: this process's place among the run's workers.
      settings: the settings the folder records (`run_config.json`), data files included.
      overwrite: replace a run of other settings in the folder instead of refusing.

    Raises:
      FolderInUseError: another live run holds the folder.
      ConfigError: the folder holds another run, and `overwrite` is off.
    """
    with contextlib.ExitStack() as stack:
        lock = None
        if worker.is_chief:
            lock = stack.enter_context(run_lock.locked(config.model_dir))
        finished = run_state.claim(
            config.model_dir, settings, config.epochs, overwrite=overwrite and worker.is_chief
        )
        folder = RunFolder(config, worker, settings, lock, finished)
        stack.callback(folder._remove_scratch)
        stack.enter_context(storage_failures.explained(config, folder))
        yield folder
