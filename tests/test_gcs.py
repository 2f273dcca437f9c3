"""`gs://` through TensorFlow's own GCS client (HTTPS, resumable uploads, retries, renames
that are copies, listings by prefix), against a GCS emulator in a network namespace of
the test's own (`tests/sandbox.py`): nothing leaves the machine, and nothing is a stand-in
for the client. The server counts the requests each start makes."""

import json
import re
import signal
import time

import pytest

from rps_tfdata.trainer import artifacts

from . import sandbox
from .helpers import (
    RPS28,
    launch,
    module,
    read_until,
    run_python,
    small_run_flags,
    stopped_at_exit,
)

pytestmark = pytest.mark.slow  # a server and training processes in a namespace

BUCKET = f"gs://{sandbox.BUCKET}"
# Copies a local folder into the bucket through TensorFlow's client, many files at once.
UPLOAD = """
import os, sys
from concurrent import futures
import tensorflow as tf
source, target = sys.argv[1:3]
pairs = []
for folder, _, names in os.walk(source):
    for name in names:
        relative = os.path.relpath(os.path.join(folder, name), source)
        pairs.append((os.path.join(folder, name), f"{target}/{relative}"))
for folder in {os.path.dirname(t) for _, t in pairs}:
    tf.io.gfile.makedirs(folder)
with futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(lambda pair: tf.io.gfile.copy(*pair, overwrite=True), pairs))
print(len(pairs))
"""
# The settings of every run here: the bundled real images (48 training, 12 validation:
# 6 steps of 8), the test set, the disk cache and step checkpoints, all in the bucket.
EPOCHS = 1


def flags(run, *extra):
    base = small_run_flags(f"{BUCKET}/data", f"{BUCKET}/{run}", f"--epochs={EPOCHS}")
    return [
        *base,
        f"--test_dir={BUCKET}/test",
        "--image_cache=disk",
        "--checkpoint_every=2",
        *extra,
    ]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory, held_out_dir):
    """The GCS server, holding the bundled images as `data/` and a test set as `test/`."""
    with sandbox.gcs(str(tmp_path_factory.mktemp("gcs"))) as server:
        for source, target in ((RPS28, "data"), (held_out_dir, "test")):
            copied = in_bucket(server, ["-c", UPLOAD, source, f"{BUCKET}/{target}"])
            assert copied.returncode == 0, copied.stderr[-3000:]
        yield server


def in_bucket(server, arguments, **kwargs):
    """`python ARGUMENTS` inside the server's namespace, to its end."""
    prefix = sandbox.in_namespace(server.namespace)
    return run_python(arguments, env=server.env, prefix=prefix, **kwargs)


def train(server, run, *extra, **kwargs):
    return in_bucket(server, module("train", *flags(run, *extra)), **kwargs)


def read_json(server, path):
    script = "import sys, tensorflow as tf; print(tf.io.gfile.GFile(sys.argv[1]).read())"
    result = in_bucket(server, ["-c", script, path])
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def finished(bucket):
    """A run trained to its end in the bucket, uninterrupted: its metrics."""
    result = train(bucket, "finished")
    assert result.returncode == 0, result.stderr[-3000:]
    return read_json(bucket, f"{BUCKET}/finished/{artifacts.METRICS_FILE}")


def test_a_whole_run_trains_in_the_bucket_and_its_commands_read_it(bucket, finished):
    assert finished["finished"] and finished["epochs_run"] == EPOCHS
    assert finished["num_train_images"] == 48 and finished["num_test_images"] == 9
    run = f"{BUCKET}/finished"
    evaluated = in_bucket(
        bucket, module("evaluate", f"--model_dir={run}", f"--data_dir={BUCKET}/test")
    )
    assert evaluated.returncode == 0 and "accuracy:" in evaluated.stdout, evaluated.stderr[-2000:]
    predicted = in_bucket(bucket, module("predict", f"--model_dir={run}", f"{BUCKET}/test/rock"))
    assert predicted.returncode == 0 and len(predicted.stdout.splitlines()) == 3
    exported = in_bucket(bucket, module("export", f"--model_dir={run}", f"--out={BUCKET}/served/1"))
    assert exported.returncode == 0, exported.stderr[-2000:]
    served = in_bucket(
        bucket, module("predict", f"--saved_model={BUCKET}/served/1", f"{BUCKET}/test/rock")
    )
    assert served.stdout == predicted.stdout


def per_file_requests(lines):
    """The requests of `lines` that name one image file (a stat or a read of a file of
    `data/` or `test/`), not a listing (whose path names no object)."""
    return [r for r in lines if "data%2F" in r.split("?")[0] or "test%2F" in r.split("?")[0]]


def test_a_run_killed_mid_epoch_restarts_from_the_listing_and_ends_as_one_never_killed(
    bucket, finished
):
    """Counted at the server: a first start stats and screens each file (and fills the
    disk cache from it); a restart, finished or not, reuses the run's file index after
    one listing per folder, and asks about no data file before its first step; the
    killed run ends with the uninterrupted run's weights."""
    prefix = sandbox.in_namespace(bucket.namespace)
    start = launch(module("train", *flags("killed")), env=bucket.env, prefix=prefix, merge=True)
    with stopped_at_exit(start):
        before = bucket.requests()
        read_until(start, "epoch 1/1 started")
        first = bucket.lines()[before:]
        read_until(start, "saved the run at step 4 of epoch 1")
        start.send_signal(signal.SIGKILL)
        start.wait()
    restart = launch(module("train", *flags("killed")), env=bucket.env, prefix=prefix, merge=True)
    with stopped_at_exit(restart):
        before = bucket.requests()
        output = read_until(restart, "epoch 1/1 started")
        unfinished = bucket.lines()[before:]
        assert restart.wait(timeout=300) == 0
    assert "continuing the run in" in output and "after step 4 of epoch 1" in output
    before = bucket.requests()
    assert train(bucket, "killed").returncode == 0
    finished_again = bucket.lines()[before:]
    assert len(per_file_requests(first)) >= 48 + 12 + 9  # each file asked about
    assert per_file_requests(unfinished) == [] and per_file_requests(finished_again) == []
    metrics = read_json(bucket, f"{BUCKET}/killed/{artifacts.METRICS_FILE}")
    assert metrics["final_weights_sha256"] == finished["final_weights_sha256"]


# TensorFlow's own knobs for its GCS client's timeouts (defaults of minutes): a bucket
# that went away is given up on in seconds here.
GIVE_UP_SOON = {
    "GCS_REQUEST_CONNECTION_TIMEOUT_SECS": "2",
    "GCS_REQUEST_IDLE_TIMEOUT_SECS": "2",
    "GCS_METADATA_REQUEST_TIMEOUT_SECS": "2",
    "GCS_READ_REQUEST_TIMEOUT_SECS": "4",
    "GCS_WRITE_REQUEST_TIMEOUT_SECS": "4",
}


def test_a_bucket_that_goes_away_stops_the_run_in_one_line_and_the_rerun_continues(
    bucket, finished
):
    """The bucket's address cut as epoch 2 starts (the namespace's loopback down: the
    client's requests time out, nothing resets them), back once the run has stopped."""
    prefix = sandbox.in_namespace(bucket.namespace)
    env = {**bucket.env, **GIVE_UP_SOON}
    process = launch(module("train", *flags("away")), env=env, prefix=prefix, merge=True)
    with stopped_at_exit(process):
        read_until(process, "saved the run at step 2 of epoch 1")
        sandbox.cut_loopback(bucket.namespace)
        cut = time.monotonic()
        try:
            output = process.communicate(timeout=240)[0]
            stopped = time.monotonic() - cut
        finally:
            sandbox.cut_loopback(bucket.namespace, up=True)
    assert process.returncode == 1 and "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {BUCKET} stopped answering (")
    assert re.search(r"the run is saved up to step [24] of epoch 1: rerun", errors[0])
    assert stopped < 120
    result = train(bucket, "away")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_json(bucket, f"{BUCKET}/away/{artifacts.METRICS_FILE}")
    assert metrics["final_weights_sha256"] == finished["final_weights_sha256"]


def test_two_runs_on_one_bucket_folder_never_both_save(bucket, finished):
    """No lock on an object store: the run started later takes the folder over, and the
    earlier one stops at its next save with one line naming it. The first is frozen as
    its epoch starts while the later one runs, so the two meet however fast each is."""
    prefix = sandbox.in_namespace(bucket.namespace)
    first = launch(module("train", *flags("shared")), env=bucket.env, prefix=prefix, merge=True)
    with stopped_at_exit(first):
        read_until(first, "epoch 1/1 started")
        first.send_signal(signal.SIGSTOP)
        later = train(bucket, "shared")
        first.send_signal(signal.SIGCONT)
        output = first.communicate(timeout=240)[0]
    assert later.returncode == 0, later.stderr[-3000:]
    assert first.returncode == 1 and "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "was taken over by a run started later (pid " in errors[0]
    metrics = read_json(bucket, f"{BUCKET}/shared/{artifacts.METRICS_FILE}")
    assert metrics["final_weights_sha256"] == finished["final_weights_sha256"]


def test_a_data_service_worker_reads_the_bucket(bucket, finished):
    """A dispatcher, a worker that reads the training images from the bucket, and a
    trainer, all inside the bucket's namespace."""
    prefix = sandbox.in_namespace(bucket.namespace)
    port = 5050
    dispatcher = launch(module("data_service", "--dispatcher", f"--port={port}"), prefix=prefix)
    worker = launch(
        module("data_service", "--worker", f"--dispatcher_address=127.0.0.1:{port}"),
        env=bucket.env,
        prefix=prefix,
    )
    with stopped_at_exit(dispatcher, worker):
        for process in (dispatcher, worker):
            assert "ready" in process.stdout.readline()
        service = [f"--data_service=grpc://127.0.0.1:{port}", "--image_cache=none"]
        run = small_run_flags(f"{BUCKET}/data", f"{BUCKET}/served_run", *service)
        result = in_bucket(bucket, module("train", *run))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_json(bucket, f"{BUCKET}/served_run/{artifacts.METRICS_FILE}")
    assert metrics["finished"] and metrics["num_train_images"] == 48
