"""Folders anywhere TensorFlow can reach: a whole run with its images and its folder in
TensorFlow's in-memory file system (`ram://`, as a bucket would be), and the rules that
replace an atomic rename on object stores."""

import json

import pytest
import tensorflow as tf

from rps_tfdata.infra import atomic, fs
from rps_tfdata.infra.errors import UserError
from rps_tfdata.serving import tflite
from rps_tfdata.trainer import artifacts, evaluation, synthetic_hands, training

from .helpers import small_run


def test_a_whole_run_lives_in_a_bucket():
    data, run_dir = "ram://bucket/data", "ram://bucket/run"
    synthetic_hands.write_dataset(data, 8, size=40, seed=1)
    config = small_run(data, run_dir, checkpoint_every=1, image_cache="disk")
    metrics = training.train_and_evaluate(config)
    assert metrics["finished"] and metrics["epochs_run"] == 1
    with fs.open_file(f"{run_dir}/{artifacts.METRICS_FILE}") as f:
        assert json.load(f)["final_weights_sha256"] == metrics["final_weights_sha256"]
    for name in artifacts.RUN_FILES:
        if name not in (
            artifacts.FLAGS_FILE,
            tflite.FOLDER,
        ):  # the commands', not training's
            assert fs.exists(f"{run_dir}/{name}"), name
    assert atomic.is_complete(f"{run_dir}/export/1")
    cache = f"{run_dir}/tf_data_cache"
    assert all(atomic.is_complete(f"{cache}/{name}") for name in fs.listdir(cache))
    # Read back from the bucket, and a rerun reports instead of training again.
    result = evaluation.evaluate_folder(artifacts.load_run(run_dir), data)
    assert result["num_images"] == 24
    assert training.train_and_evaluate(config) == metrics


def test_a_folder_on_an_object_store_is_complete_only_once_marked_last():
    folder = "ram://bucket/built"

    def killed(staging):
        tf.io.write_file(f"{staging}/half", b"...")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.build_folder(folder, killed)
    assert fs.exists(folder) and not atomic.is_complete(folder)  # never read as done
    atomic.build_folder(folder, lambda staging: tf.io.write_file(f"{staging}/whole", b"!"))
    assert atomic.is_complete(folder)  # the killed build was redone, not refused
    assert sorted(fs.listdir(folder)) == [".rps_tfdata_complete", "whole"]
    fs.makedirs("ram://bucket/theirs")
    tf.io.write_file("ram://bucket/theirs/data", b"not ours")
    with pytest.raises(UserError, match="was not written by rps_tfdata"):
        atomic.build_folder("ram://bucket/theirs", lambda staging: None)


def test_a_file_written_to_a_bucket_leaves_no_temporary_behind():
    atomic.write_json("ram://bucket/notes/a.json", {"x": 1})
    assert fs.listdir("ram://bucket/notes") == ["a.json"]
    with pytest.raises(FileNotFoundError):
        fs.stat("ram://bucket/notes/missing.json")


def test_calls_for_many_remote_files_overlap_and_local_ones_do_not():
    """Header screens and fingerprints of a bucket wait on the network: many at once."""
    import threading
    import time

    running, most = [0], [0]
    lock = threading.Lock()

    def call(path):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return path.upper()

    remote = [f"ram://bucket/{i}.png" for i in range(64)]
    assert fs.for_each(call, remote) == [p.upper() for p in remote]  # in order
    assert most[0] > 1
    most[0] = 0
    local = [f"/data/{i}.png" for i in range(8)]
    assert fs.for_each(call, local) == [p.upper() for p in local] and most[0] == 1
