"""Damaged checkpoints: a rerun falls back to the newest one that restores, or says so."""

import glob
import os

import keras
import pytest

from rps_tfdata.infra.errors import CheckpointError
from rps_tfdata.trainer import artifacts, run_state, training

from .helpers import finished_config


def truncate(prefix):
    """Cuts every file of a checkpoint to half its size, as a full disk or a copy cut
    short would leave it."""
    paths = glob.glob(prefix + ".*")
    assert paths
    for path in paths:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)


def unfinished(model_dir):
    """`model_dir`, a finished run's copy, as a run killed after its last checkpoint: its
    final metrics gone, so a rerun restores and continues instead of reporting."""
    os.remove(os.path.join(model_dir, artifacts.METRICS_FILE))
    return os.path.join(model_dir, artifacts.CHECKPOINTS_FOLDER)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(
    finished_run, copy_of_finished_run, synthetic_dir, held_out_dir, caplog
):
    folder = unfinished(copy_of_finished_run)
    assert run_state.saved_checkpoints(folder) == [f"{folder}/ckpt-2", f"{folder}/ckpt-1"]
    truncate(f"{folder}/ckpt-2")
    config = finished_config(synthetic_dir, held_out_dir, copy_of_finished_run)
    metrics = training.train_and_evaluate(config)
    assert f"checkpoint {folder}/ckpt-2 cannot be restored" in caplog.text
    # Epoch 2 trained again from epoch 1's state: the same run as one never damaged.
    assert metrics["epochs_run"] == 2
    assert metrics["final_weights_sha256"] == finished_run[1]["final_weights_sha256"]


def test_when_no_checkpoint_restores_the_rerun_stops_naming_the_folder(
    copy_of_finished_run, synthetic_dir, held_out_dir
):
    folder = unfinished(copy_of_finished_run)
    for prefix in run_state.saved_checkpoints(folder):
        truncate(prefix)
    with pytest.raises(CheckpointError) as stopped:
        training.train_and_evaluate(
            finished_config(synthetic_dir, held_out_dir, copy_of_finished_run)
        )
    message = str(stopped.value)
    assert f"no checkpoint in {folder} can be restored" in message and "--overwrite" in message
    assert "\n" not in message


def tiny_state(folder):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return run_state.RunState(str(folder), model, optimizer), model


def record(state, model, epoch):
    row = {"epoch": epoch, "loss": 1.0, "accuracy": 0.5, "val_loss": 1 / epoch}
    state.record_epoch({**row, "val_accuracy": 0.5}, model)


def test_a_save_cut_short_is_no_checkpoint_and_the_next_save_clears_it(tmp_path):
    """A checkpoint's index is renamed into place last: the files a killed save leaves
    behind (under its temporary prefix) are never taken for a checkpoint."""
    state, model = tiny_state(tmp_path)
    record(state, model, 1)
    folder = os.path.join(tmp_path, artifacts.CHECKPOINTS_FOLDER)
    for suffix in (".index", ".data-00000-of-00001"):  # what a kill mid-save leaves
        with open(os.path.join(folder, f".ckpt-2{suffix}"), "wb") as f:
            f.write(b"half")
    assert run_state.saved_checkpoints(folder) == [f"{folder}/ckpt-1"]
    record(state, model, 2)
    assert run_state.saved_checkpoints(folder) == [f"{folder}/ckpt-2", f"{folder}/ckpt-1"]
    assert not [name for name in os.listdir(folder) if name.startswith(".")]


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    state, model = tiny_state(tmp_path)
    for epoch in range(1, run_state.KEEP + 2):
        record(state, model, epoch)
    folder = os.path.join(tmp_path, artifacts.CHECKPOINTS_FOLDER)
    numbers = range(run_state.KEEP + 1, 1, -1)
    assert run_state.saved_checkpoints(folder) == [f"{folder}/ckpt-{n}" for n in numbers]
    restored, _ = tiny_state(tmp_path)
    assert restored.restore() and int(restored.epoch.numpy()) == run_state.KEEP + 1
