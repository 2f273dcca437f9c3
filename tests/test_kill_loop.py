"""A training process SIGKILLed at seeded random moments and restarted each time ends
with the weights and history of a run never killed."""

import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from rps_tfdata.core import artifacts

from .test_resume import (  # noqa: F401
    data_dir,
    final_weights,
    finish,
    history,
    reference,
    start,
    wait_for,
)

pytestmark = pytest.mark.slow  # real training processes, killed by real signals

KILLS = 6  # at most; the schedule is seeded, so a failure replays
BUDGET_SECONDS = 400


def written_since(log, offset):
    with open(log) as f:
        f.seek(offset)
        return f.read()


def test_random_sigkills_then_resume_end_as_an_uninterrupted_run(data_dir, reference, tmp_path):  # noqa: F811
    model_dir = str(tmp_path / "run")
    schedule = random.Random(20261129)
    deadline = time.monotonic() + BUDGET_SECONDS
    kills = []  # (seconds after start, the last line the run had printed)
    for _ in range(KILLS):
        log = os.path.join(tmp_path, "run.log")  # what `start` appends to
        offset = os.path.getsize(log) if os.path.exists(log) else 0
        process, _ = start(data_dir, model_dir)
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
    finish(data_dir, model_dir)
    assert history(model_dir) == history(reference), f"kills: {kills}"
    for ours, theirs in zip(final_weights(model_dir), final_weights(reference), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    ours, theirs = (artifacts.read_json(d, artifacts.METRICS) for d in (model_dir, reference))
    assert ours["best_epoch"] == theirs["best_epoch"]
