"""One live run per model folder: a second is refused at once, a killed one blocks nothing."""

import json
import os
import signal

import pytest

from rps_tfdata.infra.errors import FolderInUseError
from rps_tfdata.trainer import artifacts, run_lock, synthetic_hands

from .helpers import launch, module, small_run_flags, stopped_at_exit

HOLD = """
import sys, time
from rps_tfdata.trainer import run_lock
with run_lock.locked(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_held_folder_is_refused_naming_it_and_the_holder(tmp_path):
    with run_lock.locked(str(tmp_path)):
        with pytest.raises(FolderInUseError) as refused:
            with run_lock.locked(str(tmp_path)):
                pass
    message = str(refused.value)
    assert f"--model_dir={tmp_path} is in use by a training run" in message
    assert f"pid {os.getpid()} on " in message
    with run_lock.locked(str(tmp_path)):  # released when the block ends
        pass


@pytest.mark.slow
def test_a_killed_holder_leaves_nothing_that_blocks(tmp_path):
    holder = launch(["-c", HOLD, str(tmp_path)])
    with stopped_at_exit(holder):
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(FolderInUseError, match=f"pid {holder.pid} on "):
            with run_lock.locked(str(tmp_path)):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_lock.locked(str(tmp_path)):  # the kernel dropped the dead process's lock
        pass


@pytest.mark.slow
def test_two_runs_started_at_once_on_one_folder_never_both_train(tmp_path):
    data = str(tmp_path / "data")
    synthetic_hands.write_dataset(data, 10, size=64, seed=5)
    model_dir = str(tmp_path / "run")
    runs = {
        seed: launch(
            module("train", *small_run_flags(data, model_dir, "--epochs=3", f"--seed={seed}"))
        )
        for seed in (1, 2)
    }
    with stopped_at_exit(*runs.values()):
        outcomes = {
            seed: (run.wait(timeout=600), run.communicate()[1]) for seed, run in runs.items()
        }
    winners = [seed for seed, (code, _) in outcomes.items() if code == 0]
    assert len(winners) == 1, outcomes
    (loser,) = set(runs) - set(winners)
    code, stderr = outcomes[loser]
    assert code == 1 and "Traceback" not in stderr
    refusal = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(refusal) == 1 and f"--model_dir={model_dir}" in refusal[0]
    # The folder is wholly the winner's: its settings and its three epochs, once each.
    with open(os.path.join(model_dir, artifacts.RUN_CONFIG_FILE)) as f:
        assert json.load(f)["seed"] == winners[0]
    with open(os.path.join(model_dir, artifacts.HISTORY_FILE)) as f:
        assert len(f.read().splitlines()) == 1 + 3
