"""`gs://` through TensorFlow's own GCS client (HTTPS, resumable uploads, retries, renames
that are copies, listings by prefix), against a GCS emulator in a network namespace of
the test's own (`tests/sandbox.py`): nothing leaves the machine, and nothing is a stand-in
for the client. The server counts the requests each start makes."""

import json
import signal

import pytest

from rps_tfdata.core import artifacts

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
# The settings of every run here: the bundled real images (48 training, 12 validation),
# the test set, the disk cache and step checkpoints, all in the bucket.
EPOCHS = 2


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
    return read_json(bucket, f"{BUCKET}/finished/{artifacts.METRICS}")


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


def test_a_run_killed_mid_epoch_in_the_bucket_ends_as_the_uninterrupted_one(bucket, finished):
    prefix = sandbox.in_namespace(bucket.namespace)
    process = launch(module("train", *flags("killed")), env=bucket.env, prefix=prefix, merge=True)
    with stopped_at_exit(process):
        read_until(process, "saved the run at step 4 of epoch 1")
        process.send_signal(signal.SIGKILL)
        process.wait()
    result = train(bucket, "killed")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing the run in" in result.stderr and "after step 4 of epoch 1" in result.stderr
    metrics = read_json(bucket, f"{BUCKET}/killed/{artifacts.METRICS}")
    assert metrics["final_weights_sha256"] == finished["final_weights_sha256"]
