"""Killed runs resume exactly: real training processes, stopped by real signals."""

import glob
import os
import re
import signal

import pytest
import tensorflow as tf

from rps_tfdata.infra import atomic
from rps_tfdata.trainer import artifacts

from .helpers import (
    RESUME_EPOCHS,
    assert_same_final_weights,
    finish_resume_job,
    history_of,
    printed,
    start_resume_job,
    wait_for,
)

pytestmark = pytest.mark.slow  # real training processes, killed by real signals


def tensorboard_steps(model_dir):
    steps = []
    for path in glob.glob(os.path.join(model_dir, artifacts.LOGS_FOLDER, "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            steps += [event.step for value in event.summary.value if value.tag == "epoch_loss"]
    return sorted(set(steps)), len(steps)


def test_sigkill_between_and_inside_epochs_then_sigterm_resumes_exactly(
    resume_data, resume_reference, tmp_path
):
    model_dir = str(tmp_path / "run")
    # 1. SIGKILL as soon as epoch 1 is saved (at the boundary, or just past it).
    process, log = start_resume_job(resume_data, model_dir)
    wait_for(lambda: printed(log, "epoch 2/3 started"), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # 2. SIGKILL inside epoch 2: frozen (SIGSTOP) as soon as the epoch has started, so the
    # kill lands inside it however fast the machine is, then killed.
    process, log = start_resume_job(resume_data, model_dir)
    wait_for(lambda: printed(log, "epoch 2/3 started"), process)
    process.send_signal(signal.SIGSTOP)
    assert not printed(log, "epoch 2/3:")  # frozen inside the epoch, before its record
    process.send_signal(signal.SIGKILL)
    process.wait()
    # 3. SIGTERM inside epoch 3: a clean stop at the next step, with a message.
    process, log = start_resume_job(resume_data, model_dir)
    wait_for(lambda: printed(log, "epoch 3/3 started"), process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 1
    with open(log) as f:  # the step it stopped at is saved: the rerun starts there
        assert re.search(
            r"stopped by SIGTERM in epoch 3; the run is saved up to step \d+ of epoch 3", f.read()
        )
    # 4. The rest.
    finish_resume_job(resume_data, model_dir)

    # Every epoch once, every value equal.
    assert history_of(model_dir) == history_of(resume_reference)
    assert_same_final_weights(model_dir, resume_reference)
    with open(os.path.join(model_dir, artifacts.BEST_WEIGHTS_FILE), "rb") as a:
        with open(os.path.join(resume_reference, artifacts.BEST_WEIGHTS_FILE), "rb") as b:
            assert len(a.read()) == len(b.read())
    assert (
        artifacts.read_json(model_dir, artifacts.METRICS_FILE)["best_epoch"]
        == (artifacts.read_json(resume_reference, artifacts.METRICS_FILE)["best_epoch"])
    )
    steps, _ = tensorboard_steps(model_dir)
    assert steps == list(range(RESUME_EPOCHS))  # one run in TensorBoard, every epoch in it


def test_a_kill_while_the_disk_cache_fills_leaves_nothing_that_blocks(
    resume_data, resume_reference, tmp_path
):
    model_dir = str(tmp_path / "run")
    cache = os.path.join(model_dir, "tf_data_cache")
    process, _ = start_resume_job(resume_data, model_dir, "--image_cache=disk")
    wait_for(lambda: glob.glob(os.path.join(cache, ".train-*")), process)  # filling
    process.send_signal(signal.SIGKILL)
    process.wait()
    # A cache folder in use is a finished one: a killed fill leaves only its staging (or,
    # when the kill came just after the fill, the finished folder), never an unmarked one.
    finished = glob.glob(os.path.join(cache, "train-*"))
    assert finished or glob.glob(os.path.join(cache, ".train-*"))
    assert all(atomic.is_complete(p) for p in finished)
    finish_resume_job(resume_data, model_dir, "--image_cache=disk")
    # The cache changes where pixels are kept, not what the run computes.
    assert history_of(model_dir) == history_of(resume_reference)


def test_checkpoints_inside_epochs_resume_at_the_saved_step_exactly(
    resume_data, resume_reference, tmp_path
):
    """--checkpoint_every=3 (12 steps an epoch): SIGKILL just after the save at step 6 of
    epoch 2 and again after step 3 of epoch 3; each rerun continues at that step, and the
    run ends as one never stopped, value for value."""
    model_dir = str(tmp_path / "run")
    for saved in ("step 6 of epoch 2", "step 3 of epoch 3"):
        process, log = start_resume_job(resume_data, model_dir, "--checkpoint_every=3")
        wait_for(lambda: printed(log, f"saved the run at {saved}"), process)  # noqa: B023
        process.send_signal(signal.SIGKILL)
        process.wait()
    log = finish_resume_job(resume_data, model_dir, "--checkpoint_every=3")
    assert printed(log, f"continuing the run in {model_dir} after step 3 of epoch 3")
    assert history_of(model_dir) == history_of(resume_reference)  # no epoch repeated or lost
    assert_same_final_weights(model_dir, resume_reference)
    steps, count = tensorboard_steps(model_dir)
    assert steps == list(range(RESUME_EPOCHS)) and count == RESUME_EPOCHS  # each point once
