"""Storage that fails under a run, said in one line: a bucket TensorFlow's client gave
up on, or a full disk under the run's folder.

A save cut short is no checkpoint (`run_state`), and every artifact is written under a
temporary name, so what was saved before stays whole and a rerun continues from it;
the line says so, with what is saved.
"""

import contextlib
import errno
import re
import shutil
from typing import Iterator, Optional, Protocol

import tensorflow as tf

from rps_tfdata.infra import fs
from rps_tfdata.infra.errors import TrainingStoppedError
from rps_tfdata.trainer import run_state
from rps_tfdata.trainer.config import TrainConfig

# What TensorFlow's client says of a bucket it gave up on (after its retries).
_GAVE_UP = ("retry attempts failed", "Error executing an HTTP request")


class Saved(Protocol):
    """Where a run stands: its state once it has one, and what a rerun continues from."""

    state: Optional[run_state.RunState]

    def saved_message(self) -> str: ...


@contextlib.contextmanager
def explained(config: TrainConfig, run: Saved) -> Iterator[None]:
    """Inside the block, a bucket of the run's that stops answering or a full disk under
    `config.model_dir` raises TrainingStoppedError naming the place and what `run` has
    saved; any other failure passes unchanged."""
    try:
        yield
    except (OSError, tf.errors.OpError) as e:
        message = e.message if isinstance(e, tf.errors.OpError) else str(e)
        where = run.saved_message()
        stop = _bucket_stop(config, message, where) or _full_disk_stop(config, e, run.state, where)
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
