"""Damaged checkpoints: a rerun falls back to the newest one that restores, or says so."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from rps_tfdata.core import artifacts, run_state, training
from rps_tfdata.core.errors import CheckpointError

from .helpers import small_run


def config_for(data_dir, model_dir, epochs):
    return small_run(data_dir, model_dir, epochs=epochs, seed=3)


def truncate(prefix):
    """Cuts every file of a checkpoint to half its size, as a full disk or a copy cut
    short would leave it."""
    paths = glob.glob(prefix + ".*")
    assert paths
    for path in paths:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)


def last_weights(model_dir):
    folder = os.path.join(model_dir, artifacts.CHECKPOINTS)
    reader = tf.train.load_checkpoint(run_state.saved_checkpoints(folder)[0])
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("model/"))
    return [reader.get_tensor(n) for n in names]


@pytest.fixture(scope="module")
def reference(synthetic_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("reference")
    training.train_and_evaluate(config_for(synthetic_dir, model_dir, 3))
    return str(model_dir)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(
    synthetic_dir, reference, tmp_path, caplog
):
    training.train_and_evaluate(config_for(synthetic_dir, tmp_path, 2))
    folder = os.path.join(tmp_path, artifacts.CHECKPOINTS)
    assert run_state.saved_checkpoints(folder) == [f"{folder}/ckpt-2", f"{folder}/ckpt-1"]
    truncate(f"{folder}/ckpt-2")
    metrics = training.train_and_evaluate(config_for(synthetic_dir, tmp_path, 3))
    assert metrics["epochs_run"] == 3
    assert f"checkpoint {folder}/ckpt-2 cannot be restored" in caplog.text
    # Epoch 2 trained again from epoch 1's state: the same run as one never damaged.
    for ours, theirs in zip(last_weights(str(tmp_path)), last_weights(reference), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert (
        artifacts.read_json(str(tmp_path), artifacts.METRICS)["final_weights_sha256"]
        == (artifacts.read_json(reference, artifacts.METRICS)["final_weights_sha256"])
    )


def test_when_no_checkpoint_restores_the_rerun_stops_naming_the_folder(synthetic_dir, tmp_path):
    training.train_and_evaluate(config_for(synthetic_dir, tmp_path, 2))
    folder = os.path.join(tmp_path, artifacts.CHECKPOINTS)
    for prefix in run_state.saved_checkpoints(folder):
        truncate(prefix)
    with pytest.raises(CheckpointError) as stopped:
        training.train_and_evaluate(config_for(synthetic_dir, tmp_path, 3))
    message = str(stopped.value)
    assert f"no checkpoint in {folder} can be restored" in message and "--overwrite" in message
    assert "\n" not in message


def test_only_the_newest_checkpoints_are_kept(synthetic_dir, tmp_path):
    training.train_and_evaluate(config_for(synthetic_dir, tmp_path, run_state.KEEP + 1))
    folder = os.path.join(tmp_path, artifacts.CHECKPOINTS)
    numbers = range(run_state.KEEP + 1, 1, -1)
    assert run_state.saved_checkpoints(folder) == [f"{folder}/ckpt-{n}" for n in numbers]
