"""One training loop under every strategy: one device, two local replicas, two workers."""

import json
import os
import re
import signal
import time

import numpy as np
import pytest

from rps_tfdata.pipeline import options as options_lib
from rps_tfdata.pipeline import passes
from rps_tfdata.trainer import artifacts, inputs, synthetic_hands

from . import sandbox
from .helpers import (
    free_ports,
    launch,
    module,
    read_until,
    small_run_flags,
    stopped_at_exit,
    write_png,
)

# Trains in a fresh process: logical CPU devices and a cluster can only be set up
# before TensorFlow starts, so neither can happen inside the test process.
TRAIN = """
import json, sys
data_dir, model_dir, strategy, batch, devices, per_call = sys.argv[1:7]
from rps_tfdata.trainer import config, training
run = config.TrainConfig(
    data_dir=data_dir,
    model_dir=model_dir,
    epochs=2,
    seed=5,
    strategy=strategy,
    cpu_devices=int(devices),
    image_size=48,
    batch_size=int(batch),
    steps_per_loop=int(per_call),
)
result = training.train_and_evaluate(run)
if isinstance(result, training.WorkerResult):  # a worker other than the chief
    result = {**result._asdict(), "role": "worker"}
print("RESULT " + json.dumps({"role": "chief", **result}))
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("dist_data"))
    synthetic_hands.write_dataset(out, 7, size=48, seed=8)  # 18 training images: uneven shards
    return out


def start(data_dir, model_dir, strategy, *, batch=8, devices=1, per_call=1, env=None):
    arguments = [data_dir, str(model_dir), strategy, str(batch), str(devices), str(per_call)]
    return launch(["-c", TRAIN, *arguments], env=env)


def result_of(process):
    with stopped_at_exit(process):
        out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


@pytest.fixture(scope="module")
def mirrored_run(data_dir, tmp_path_factory):
    """An uninterrupted run on two replicas: its metrics."""
    return result_of(
        start(data_dir, tmp_path_factory.mktemp("mirrored") / "run", "mirrored", devices=2)
    )


@pytest.mark.slow
def test_mirrored_trains_on_two_replicas_and_refuses_an_uneven_batch(
    data_dir, mirrored_run, tmp_path
):
    metrics = mirrored_run
    assert metrics["finished"] and metrics["epochs_run"] == 2
    assert metrics["num_train_images"] == 18 and np.isfinite(metrics["val_loss"])
    uneven = start(data_dir, tmp_path / "uneven", "mirrored", batch=7, devices=2)
    _, err = uneven.communicate(timeout=300)
    assert uneven.returncode != 0
    assert "--batch_size=7 does not divide among the 2 replicas" in err


def start_workers(data_dir, model_dir, scratch, per_call=1):
    """Two `multi_worker` training processes on free 127.0.0.1 ports."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for k in range(2):
        os.makedirs(scratch[k], exist_ok=True)
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": k}})
        env = {"TF_CONFIG": tf_config, "TMPDIR": str(scratch[k])}
        processes.append(start(data_dir, model_dir, "multi_worker", per_call=per_call, env=env))
    return processes


@pytest.fixture(scope="module")
def two_workers(data_dir, tmp_path_factory):
    """An uninterrupted two-worker run: model_dir, scratch folders, both results."""
    root = tmp_path_factory.mktemp("two_workers")
    scratch = [root / f"tmp{k}" for k in range(2)]
    chief, worker = (result_of(p) for p in start_workers(data_dir, root / "run", scratch))
    return root / "run", scratch, chief, worker


@pytest.mark.slow
def test_two_workers_train_to_identical_weights_and_only_the_chief_writes(two_workers):
    model_dir, scratch, chief, worker = two_workers
    assert (chief["role"], worker["role"]) == ("chief", "worker")
    assert chief["finished"] and worker["epochs_run"] == chief["epochs_run"] == 2
    assert worker["final_weights_sha256"] == chief["final_weights_sha256"]
    stored = artifacts.read_json(str(model_dir), artifacts.METRICS_FILE)
    assert stored["final_weights_sha256"] == chief["final_weights_sha256"]
    assert not os.listdir(scratch[1])  # the worker's scratch folder is gone
    # Each worker trained its own shard: 9 of the 18 training images each.
    assert chief["num_train_images"] == 9


@pytest.mark.slow
def test_two_workers_with_several_steps_per_call_end_with_the_weights_of_one(
    data_dir, two_workers, tmp_path
):
    """3 steps an epoch on each worker, in calls of 2 then 1: the collectives inside the
    in-graph loop meet step by step, and the weights are those of one step a call."""
    scratch = [tmp_path / f"tmp{k}" for k in range(2)]
    processes = start_workers(data_dir, tmp_path / "run", scratch, per_call=2)
    chief, worker = (result_of(p) for p in processes)
    one_per_call = two_workers[2]["final_weights_sha256"]
    assert chief["final_weights_sha256"] == worker["final_weights_sha256"] == one_per_call


@pytest.mark.slow
def test_two_workers_killed_after_an_epoch_resume_to_the_same_weights(
    data_dir, two_workers, tmp_path
):
    scratch = [tmp_path / f"tmp{k}" for k in range(2)]
    processes = start_workers(data_dir, tmp_path / "run", scratch)
    index = tmp_path / "run" / artifacts.CHECKPOINTS_FOLDER / "ckpt-1.index"
    while not index.exists():
        assert all(p.poll() is None for p in processes), "a worker ended before epoch 1"
        time.sleep(0.02)
    for process in processes:  # the whole job is preempted
        process.send_signal(signal.SIGKILL)
        process.wait()
    chief, worker = (result_of(p) for p in start_workers(data_dir, tmp_path / "run", scratch))
    assert chief["final_weights_sha256"] == worker["final_weights_sha256"]
    assert chief["final_weights_sha256"] == two_workers[2]["final_weights_sha256"]


def test_shards_cover_every_image_once_with_the_same_augmentation(tmp_path):
    paths = [
        write_png(str(tmp_path / f"{i:02d}.png"), np.full((8, 8, 3), i, np.uint8))
        for i in range(11)
    ]
    options = options_lib.PipelineOptions(image_size=(8, 8), batch_size=2)

    def epoch(index, count, batches_per_epoch):
        shard = slice(index, None, count)
        split = inputs.read(paths[shard], [0] * 11, 3, options, ids=range(11)[shard])
        batches = inputs.training_batches(split, seed=4, batches_per_epoch=batches_per_epoch)
        return [(x.numpy(), seeds.numpy()) for x, _, seeds in batches]

    def images(batches):
        """(seed, pixels) of the rows that hold an image (padding has seeds NO_IMAGE)."""
        return [(int(s[1]), x) for xs, ss in batches for x, s in zip(xs, ss, strict=True)]

    whole = dict(images(epoch(0, 1, 6)))
    # 6 and 5 images in batches of 2: 3 batches each; padded to 4, the last one all blank,
    # and every batch two rows (the second half's third holds one image and one blank).
    halves = [epoch(0, 2, 4), epoch(1, 2, 4)]
    assert all(len(x) == 2 for h in halves for x, _ in h) and [len(h) for h in halves] == [4, 4]
    found = [[sum(s[:, 1] >= 0) for _, s in h] for h in halves]
    assert found == [[2, 2, 2, 0], [2, 2, 1, 0]]
    seen = {}
    for half in halves:
        for seed, x in images(half):
            if seed != passes.NO_IMAGE:
                assert seed not in seen
                seen[seed] = x
    whole.pop(passes.NO_IMAGE, None)
    assert sorted(seen) == sorted(whole) == list(range(11))
    for image_id, pixels in seen.items():  # same image, same seed: same pixels
        np.testing.assert_array_equal(pixels, whole[image_id])


@pytest.mark.slow
def test_a_mirrored_run_killed_after_an_epoch_resumes_to_the_same_weights(
    data_dir, mirrored_run, tmp_path
):
    killed = start(data_dir, tmp_path / "resumed", "mirrored", devices=2)
    index = tmp_path / "resumed" / artifacts.CHECKPOINTS_FOLDER / "ckpt-1.index"
    while not index.exists():
        assert killed.poll() is None, "the run ended before epoch 1 was saved"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = result_of(start(data_dir, tmp_path / "resumed", "mirrored", devices=2))
    assert resumed["final_weights_sha256"] == mirrored_run["final_weights_sha256"]


def cli_worker(data_dir, model_dir, cluster, index, hosts=None):
    """`python -m rps_tfdata.train` as worker `index`, with the settings of TRAIN; with
    `hosts` (`sandbox.network`), on host `index`."""
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    flags = small_run_flags(
        data_dir, model_dir, "--strategy=multi_worker", "--epochs=2", "--seed=5"
    )
    prefix = sandbox.in_namespace(hosts[index].host) if hosts else ()
    env = {"TF_CONFIG": tf_config}
    return launch(module("train", *flags), env=env, merge=True, prefix=prefix)


def restarted_ends_as(two_workers, data_dir, model_dir, cluster, hosts=None):
    """The same commands, started again, continue and end as the uninterrupted run."""
    again = [cli_worker(data_dir, model_dir, cluster, k, hosts) for k in range(2)]
    with stopped_at_exit(*again):
        for process in again:
            assert process.wait(timeout=300) == 0, process.stdout.read()[-3000:]
    _, _, reference, _ = two_workers
    stored = artifacts.read_json(str(model_dir), artifacts.METRICS_FILE)
    assert stored["final_weights_sha256"] == reference["final_weights_sha256"]


@pytest.mark.slow
def test_a_lost_worker_stops_the_other_with_one_line_and_the_rerun_ends_alike(
    data_dir, two_workers, tmp_path
):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    model_dir = tmp_path / "run"
    chief, worker = (cli_worker(data_dir, model_dir, cluster, k) for k in range(2))
    with stopped_at_exit(chief, worker):
        output = read_until(chief, "epoch 2/2 started")
        worker.send_signal(signal.SIGSTOP)  # the chief cannot finish epoch 2 without it
        worker.send_signal(signal.SIGKILL)
        lost = time.monotonic()
        output += chief.communicate(timeout=120)[0]
        assert time.monotonic() - lost < 60
    assert chief.returncode == 1 and "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: worker 1 at {cluster['worker'][1]} of the cluster is gone or silent ("
    )
    assert "the run is saved up to epoch 1: start every worker again" in errors[0]
    restarted_ends_as(two_workers, data_dir, model_dir, cluster)


@pytest.mark.slow
def test_a_preemption_notice_to_one_worker_stops_both_at_one_saved_step(
    data_dir, two_workers, tmp_path
):
    """SIGTERM to worker 1 (frozen as the chief starts, so the notice is waiting when it
    goes on): both workers stop at the same step, each saying so in one line; started
    again, they end with the uninterrupted run's weights."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    model_dir = tmp_path / "run"
    chief, worker = (cli_worker(data_dir, model_dir, cluster, k) for k in range(2))
    with stopped_at_exit(chief, worker):
        read_until(chief, "epoch 1/2 started")
        worker.send_signal(signal.SIGSTOP)
        worker.send_signal(signal.SIGTERM)
        worker.send_signal(signal.SIGCONT)
        outputs = [process.communicate(timeout=120)[0] for process in (chief, worker)]
    assert (chief.returncode, worker.returncode) == (1, 1)
    lines = [[ln for ln in out.splitlines() if ln.startswith("error: ")] for out in outputs]
    assert all("Traceback" not in out for out in outputs)
    assert [len(errors) for errors in lines] == [1, 1]
    saved = [re.search(r"saved up to (step \d+ of epoch \d+)", errors[0]) for errors in lines]
    assert saved[0] and saved[1] and saved[0].group(1) == saved[1].group(1)  # the same step
    assert "stopped by a stop request on another worker" in lines[0][0]
    assert "stopped by SIGTERM" in lines[1][0]
    restarted_ends_as(two_workers, data_dir, model_dir, cluster)


@pytest.mark.slow
def test_a_cut_link_between_two_hosts_stops_both_with_one_line_and_the_rerun_ends_alike(
    data_dir, two_workers, tmp_path
):
    """Each worker on a host of its own (a network namespace with its own address on a
    switch); worker 1's cable cut as epoch 2 starts, so packets are dropped and nothing
    resets a connection (the case a SIGKILL does not cover); back once both stopped."""
    with sandbox.network(2) as hosts:
        cluster = {"worker": [f"{host.address}:12345" for host in hosts]}
        model_dir = tmp_path / "run"
        chief, worker = (cli_worker(data_dir, model_dir, cluster, k, hosts) for k in range(2))
        with stopped_at_exit(chief, worker):
            output = read_until(chief, "epoch 2/2 started")
            sandbox.set_link(hosts[1], up=False)
            cut = time.monotonic()
            try:
                outputs = [output + chief.communicate(timeout=240)[0]]
                outputs.append(worker.communicate(timeout=240)[0])
                stopped = time.monotonic() - cut
            finally:
                sandbox.set_link(hosts[1], up=True)
        assert (chief.returncode, worker.returncode) == (1, 1), outputs[0][-3000:]
        assert all("Traceback" not in out for out in outputs)
        lines = [[ln for ln in out.splitlines() if ln.startswith("error: ")] for out in outputs]
        assert [len(errors) for errors in lines] == [1, 1], lines
        assert lines[0][0].startswith(f"error: worker 1 at {cluster['worker'][1]} of the cluster")
        assert all("the run is saved up to epoch 1" in errors[0] for errors in lines), lines
        assert stopped < 120, stopped
        print(f"both workers stopped {stopped:.1f} s after the cut")
        restarted_ends_as(two_workers, data_dir, model_dir, cluster, hosts)
