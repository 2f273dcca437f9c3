"""The examples a user copies run as written: the seed's script, migrated with one import
and the checkpoint's name, trains on small images with ModelCheckpoint and load_weights."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "rps28")


@pytest.mark.slow  # runs the script as a user does, in its own process
def test_the_migrated_seed_script_trains_checkpoints_and_reloads(tmp_path):
    script = os.path.join(ROOT, "examples", "seed_script.py")
    done = subprocess.run(
        [sys.executable, script, DATA, "2", "48"],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # where the script writes its checkpoint
        env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Found 48 images belonging to 3 classes." in done.stdout
    assert "Found 12 images belonging to 3 classes." in done.stdout
    assert "Epoch 2/2" in done.stdout and "best val_loss" in done.stdout
    assert (tmp_path / "my_checkpoint.weights.h5").stat().st_size > 0
