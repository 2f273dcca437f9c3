"""A run whose disk fills: real training processes on a real tmpfs too small for them.

The disk's size is worked out from the resume tests' reference run (the sizes of its
checkpoints and artifacts), so each run stops at the save it was meant to: a checkpoint
inside the run, the Keras model at its end, the disk cache before the first epoch.
"""

import os
import re

import pytest

from rps_tfdata.trainer import artifacts

from . import sandbox
from .helpers import (
    assert_same_final_weights,
    finish_resume_job,
    history_of,
    start_resume_job,
    stopped_at_exit,
)

pytestmark = pytest.mark.slow  # real training processes on a real full disk

MB = 2**20


def _size(folder: str, *names: str) -> int:
    """The bytes of the files under `folder` (or of the named files and folders in it)."""
    paths = [os.path.join(folder, name) for name in names] if names else [folder]
    total = 0
    for path in paths:
        if os.path.isfile(path):
            total += os.path.getsize(path)
        for root, _, files in os.walk(path):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _stopped_full(data_dir: str, model_dir: str, *extra: str) -> str:
    """The resume job run on a disk that fills: it must stop with exit status 1 and the
    full disk's line (no traceback, no crash); that line."""
    process, log = start_resume_job(data_dir, model_dir, *extra)
    with stopped_at_exit(process):
        status = process.wait(timeout=300)
    with open(log) as f:
        text = f.read()
    os.remove(log)
    assert status == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if "is full (No space left on device)" in line]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


def _files(model_dir: str) -> list[str]:
    """The run folder's files, TensorBoard's event files by folder only."""
    found = []
    for root, _, files in os.walk(model_dir):
        relative = os.path.relpath(root, model_dir)
        found += [
            os.path.normpath(os.path.join(relative, f)) for f in files if ".tfevents." not in f
        ]
        found += [relative] if any(".tfevents." in f for f in files) else []
    return sorted(found)


def test_a_disk_that_fills_stops_the_run_in_one_line_and_the_rerun_ends_it_exactly(
    resume_data, resume_reference, tmp_path
):
    """On a disk with room for one checkpoint and a half: epoch 2's checkpoint fails and
    the run stops saved up to epoch 1. Grown to hold every checkpoint but not the Keras
    model: the rerun trains epochs 2 and 3 and stops at the model (h5py, under it, used to
    die of SIGSEGV there). Grown again: the rerun only finishes, and the run is the one
    that never stopped, file for file and bit for bit."""
    checkpoint = _size(os.path.join(resume_reference, "checkpoints")) // 3
    best = _size(resume_reference, artifacts.BEST_WEIGHTS_FILE)
    keras_model = _size(resume_reference, artifacts.FINAL_MODEL_FILE)
    with sandbox.small_disk(str(tmp_path / "run"), (1.5 * checkpoint + best + MB) / MB) as run:
        line = _stopped_full(resume_data, run)
        assert re.search(
            rf"the disk of --model_dir={run} is full \(No space left on device\); a checkpoint "
            rf"of this run takes about {checkpoint / MB:.1f} MB and [\d.]+ MB are free: free "
            r"some space and rerun the same command; the run is saved up to epoch 1$",
            line,
        ), line
        assert _files(run) == sorted(
            [".rps_tfdata.lock", "checkpoints/ckpt-1.data-00000-of-00001"]
            + ["checkpoints/ckpt-1.index", "best.weights.h5", "flags.txt", "history.csv"]
            + ["run_config.json", "logs/train", "logs/validation"]
        )  # nothing half-written left behind

        sandbox.resize_disk(run, (3 * checkpoint + best + keras_model / 2 + MB) / MB)
        assert _stopped_full(resume_data, run).endswith("the run is saved up to epoch 3")

        sandbox.resize_disk(run, 4 * _size(resume_reference) / MB)
        finish_resume_job(resume_data, run)
        assert _files(run) == _files(resume_reference)
        assert history_of(run) == history_of(resume_reference)
        assert_same_final_weights(run, resume_reference)


def test_a_disk_cache_that_does_not_fit_stops_before_the_first_epoch(
    resume_data, resume_reference, tmp_path
):
    """--image_cache=disk on a 2 MB disk (the training split's pixels take 3.2 MB): the
    fill fails, the run stops in one line with nothing saved and no staging folder left,
    and on a larger disk it trains as the memory-cached reference did."""
    with sandbox.small_disk(str(tmp_path / "run"), 2) as run:
        line = _stopped_full(resume_data, run, "--image_cache=disk")
        assert line.endswith(
            "MB are free: free some space and rerun the same command; "
            "nothing of the run is saved yet"
        ), line
        assert os.listdir(os.path.join(run, "tf_data_cache")) == []
        sandbox.resize_disk(run, 4 * _size(resume_reference) / MB)
        finish_resume_job(resume_data, run, "--image_cache=disk")
        assert history_of(run) == history_of(resume_reference)
        assert_same_final_weights(run, resume_reference)
