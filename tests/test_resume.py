"""Killed runs resume exactly: real training processes, stopped by real signals."""

import csv
import glob
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from rps_tfdata.core import artifacts, files, synthetic

pytestmark = pytest.mark.slow  # real training processes, killed by real signals

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 3


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("resume_data"))
    synthetic.write_dataset(out, 20, size=150, seed=3)  # 48 training images: 12 steps of 4
    return out


def start(data_dir, model_dir, *extra):
    """A training process at 150x150 (epochs of about a second here), output to a file."""
    log = open(os.path.join(os.path.dirname(model_dir), os.path.basename(model_dir) + ".log"), "a")
    args = [f"--data_dir={data_dir}", f"--model_dir={model_dir}", f"--epochs={EPOCHS}"]
    args += ["--batch_size=4", "--seed=11", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rps_tfdata.train", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )
    return process, log.name


def wait_for(condition, process, timeout=240):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before the moment to stop it"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def printed(log, text):
    with open(log) as f:
        return text in f.read()


def finish(data_dir, model_dir, *extra):
    process, log = start(data_dir, model_dir, *extra)
    assert process.wait(timeout=300) == 0, open(log).read()[-3000:]
    return log


def history(model_dir):
    with open(os.path.join(model_dir, artifacts.HISTORY)) as f:
        rows = list(csv.DictReader(f))
    return [
        [row[k] for k in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")] for row in rows
    ]


def final_weights(model_dir):
    """The model weights of the last checkpoint (the end of training, not the best epoch)."""
    reader = tf.train.load_checkpoint(os.path.join(model_dir, artifacts.CHECKPOINTS))
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("model/"))
    return [reader.get_tensor(n) for n in names]


def tensorboard_steps(model_dir):
    steps = []
    for path in glob.glob(os.path.join(model_dir, artifacts.LOGS, "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            steps += [event.step for value in event.summary.value if value.tag == "epoch_loss"]
    return sorted(set(steps)), len(steps)


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("reference") / "run")
    finish(data_dir, model_dir)
    return model_dir


def test_sigkill_between_and_inside_epochs_then_sigterm_resumes_exactly(
    data_dir, reference, tmp_path
):
    model_dir = str(tmp_path / "run")
    # 1. SIGKILL as soon as epoch 1 is saved (at the boundary, or just past it).
    process, log = start(data_dir, model_dir)
    wait_for(lambda: printed(log, "epoch 2/3 started"), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # 2. SIGKILL inside epoch 2: frozen (SIGSTOP) as soon as the epoch has started, so the
    # kill lands inside it however fast the machine is, then killed.
    process, log = start(data_dir, model_dir)
    wait_for(lambda: printed(log, "epoch 2/3 started"), process)
    process.send_signal(signal.SIGSTOP)
    assert not printed(log, "epoch 2/3:")  # frozen inside the epoch, before its record
    process.send_signal(signal.SIGKILL)
    process.wait()
    # 3. SIGTERM inside epoch 3: a clean stop at the next step, with a message.
    process, log = start(data_dir, model_dir)
    wait_for(lambda: printed(log, "epoch 3/3 started"), process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 1
    with open(log) as f:  # the step it stopped at is saved: the rerun starts there
        assert re.search(
            r"stopped by SIGTERM in epoch 3; the run is saved up to step \d+ of epoch 3", f.read()
        )
    # 4. The rest.
    finish(data_dir, model_dir)

    assert history(model_dir) == history(reference)  # every epoch once, every value equal
    for ours, theirs in zip(final_weights(model_dir), final_weights(reference), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    with open(os.path.join(model_dir, artifacts.BEST_WEIGHTS), "rb") as a:
        with open(os.path.join(reference, artifacts.BEST_WEIGHTS), "rb") as b:
            assert len(a.read()) == len(b.read())
    assert (
        artifacts.read_json(model_dir, artifacts.METRICS)["best_epoch"]
        == (artifacts.read_json(reference, artifacts.METRICS)["best_epoch"])
    )
    steps, _ = tensorboard_steps(model_dir)
    assert steps == list(range(EPOCHS))  # one run in TensorBoard, every epoch in it


def test_a_kill_while_the_disk_cache_fills_leaves_nothing_that_blocks(
    data_dir, reference, tmp_path
):
    model_dir = str(tmp_path / "run")
    cache = os.path.join(model_dir, "tf_data_cache")
    process, _ = start(data_dir, model_dir, "--image_cache=disk")
    wait_for(lambda: glob.glob(os.path.join(cache, ".train-*")), process)  # filling
    process.send_signal(signal.SIGKILL)
    process.wait()
    # A cache folder in use is a finished one: a killed fill leaves only its staging (or,
    # when the kill came just after the fill, the finished folder), never an unmarked one.
    finished = glob.glob(os.path.join(cache, "train-*"))
    assert finished or glob.glob(os.path.join(cache, ".train-*"))
    assert all(files.is_complete(p) for p in finished)
    finish(data_dir, model_dir, "--image_cache=disk")
    # The cache changes where pixels are kept, not what the run computes.
    assert history(model_dir) == history(reference)


def test_checkpoints_inside_epochs_resume_at_the_saved_step_exactly(data_dir, reference, tmp_path):
    """--checkpoint_every=3 (12 steps an epoch): SIGKILL just after the save at step 6 of
    epoch 2 and again after step 3 of epoch 3; each rerun continues at that step, and the
    run ends as one never stopped, value for value."""
    model_dir = str(tmp_path / "run")
    for saved in ("step 6 of epoch 2", "step 3 of epoch 3"):
        process, log = start(data_dir, model_dir, "--checkpoint_every=3")
        wait_for(lambda: printed(log, f"saved the run at {saved}"), process)  # noqa: B023
        process.send_signal(signal.SIGKILL)
        process.wait()
    log = finish(data_dir, model_dir, "--checkpoint_every=3")
    assert printed(log, f"continuing the run in {model_dir} after step 3 of epoch 3")
    assert history(model_dir) == history(reference)  # no epoch repeated or lost
    for ours, theirs in zip(final_weights(model_dir), final_weights(reference), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    steps, count = tensorboard_steps(model_dir)
    assert steps == list(range(EPOCHS)) and count == EPOCHS  # each epoch's point once
