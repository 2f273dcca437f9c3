"""A training process SIGKILLed at seeded random moments and restarted each time ends
with the weights and history of a run never killed."""

import os
import random
import signal
import subprocess
import time

import pytest

from rps_tfdata.trainer import artifacts

from .helpers import (
    assert_same_final_weights,
    finish_resume_job,
    history_of,
    start_resume_job,
    wait_for,
)

pytestmark = pytest.mark.slow  # real training processes, killed by real signals

KILLS = 6  # at most; the schedule is seeded, so a failure replays
BUDGET_SECONDS = 400


def written_since(log, offset):
    with open(log) as f:
        f.seek(offset)
        return f.read()


def test_random_sigkills_then_resume_end_as_an_uninterrupted_run(
    resume_data, resume_reference, tmp_path
):
    model_dir = str(tmp_path / "run")
    schedule = random.Random(20261129)
    deadline = time.monotonic() + BUDGET_SECONDS
    kills = []  # (seconds after start, the last line the run had printed)
    for _ in range(KILLS):
        log = os.path.join(tmp_path, "run.log")  # what `start` appends to
        offset = os.path.getsize(log) if os.path.exists(log) else 0
        process, _ = start_resume_job(resume_data, model_dir)
        # Timed from this process's first epoch: its steps, validations, checkpoint and
        # history writes, and the final export and evaluation (about 3 s in all here).
        try:
            wait_for(lambda: "started" in written_since(log, offset), process)  # noqa: B023
        except AssertionError:
            break  # it finished (or failed: `finish` below tells) before an epoch started
        moment = schedule.uniform(0.0, 3.0)
        try:
            process.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            lines = written_since(log, offset).splitlines()
            kills.append((round(moment, 2), lines[-1][-80:] if lines else ""))
        else:
            break  # it finished before its moment came
        assert time.monotonic() < deadline, f"over budget after kills {kills}"
    assert len(kills) >= 2, f"the schedule killed too few runs to prove anything: {kills}"
    finish_resume_job(resume_data, model_dir)
    assert history_of(model_dir) == history_of(resume_reference), f"kills: {kills}"
    assert_same_final_weights(model_dir, resume_reference)
    ours, theirs = (
        artifacts.read_json(d, artifacts.METRICS_FILE) for d in (model_dir, resume_reference)
    )
    assert ours["best_epoch"] == theirs["best_epoch"]
