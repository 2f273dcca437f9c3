"""The tf.data service: a dispatcher and two workers started on 127.0.0.1 by the test."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from rps_tfdata.core import config as config_lib
from rps_tfdata.core import data_service, epochs, index, plan, reading, synthetic, training
from rps_tfdata.core.errors import ConfigError

from .helpers import small_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(*args):
    """A data-service process, ready when it has printed its line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rps_tfdata.data_service", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert "ready" in process.stdout.readline()
    return process


@contextlib.contextmanager
def service(workers=2, worker_timeout=2.0, port=None):
    """A dispatcher and `workers` workers; yields (address, worker processes)."""
    port = port or free_port()
    processes = [serve("--dispatcher", f"--port={port}", f"--worker_timeout={worker_timeout}")]
    try:
        for _ in range(workers):
            processes.append(serve("--worker", f"--dispatcher_address=127.0.0.1:{port}"))
        yield f"grpc://127.0.0.1:{port}", processes[1:]
    finally:
        for process in processes:  # stopped by their process, never by name
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("service_data"))
    synthetic.write_dataset(out, 10, size=48, seed=9)
    return out


def service_config(data_dir, model_dir, address, **changes):
    """A service run that leaves the image cache and the order at their defaults."""
    return small_run(data_dir, model_dir, data_service=address, **{"epochs": 2, **changes})


@pytest.mark.slow
def test_an_epoch_through_two_workers_holds_each_training_image_once(data_dir, tmp_path):
    split = index.list_split(data_dir, 0.2, "training")
    options = reading.PipelineOptions(image_size=(48, 48), batch_size=4, cache="none")
    prepared = reading.prepare(split.paths, split.labels, 3, options)
    with service() as (address, _):
        epoch = epochs.epoch_batches(prepared, 0, seed=2)
        delivered = data_service.distribute(epoch, address, data_service.job_prefix())
        assert delivered.element_spec[0].dtype == tf.uint8  # not augmented there: uint8
        ids = np.concatenate([seeds.numpy()[:, 1] for _, _, seeds in delivered])
        ids = ids[ids != epochs.NO_IMAGE]  # the padding of each worker's last batch
        assert sorted(ids % (1 << 32)) == list(range(len(split.paths)))  # 24, once each
        metrics = training.train_and_evaluate(service_config(data_dir, tmp_path / "run", address))
    assert metrics["finished"] and metrics["epochs_run"] == 2
    assert metrics["num_train_images"] == 24


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"image_cache": "memory"}, "use --image_cache=none or --image_cache=disk"),
        ({"deterministic": True}, "gives up the order of images .*: drop --deterministic"),
    ],
)
def test_what_the_user_asked_for_explicitly_is_refused_when_it_cannot_hold(
    data_dir, tmp_path, changes, message
):
    config = service_config(data_dir, tmp_path, "grpc://127.0.0.1:1", **changes)
    with pytest.raises(ConfigError, match=message):
        config_lib.check_config(config)


def test_defaults_left_by_the_user_take_the_values_the_service_needs(data_dir, tmp_path):
    config = service_config(data_dir, tmp_path, "grpc://127.0.0.1:1")
    config_lib.check_config(config)  # no --image_cache=none or --nodeterministic needed
    run_plan = plan.make_plan(config)
    assert (run_plan.input.cache, run_plan.input.deterministic) == ("none", False)
    logged = plan.describe(run_plan, config)  # the plan's log line says what they became
    assert "image cache none (--image_cache=auto); nondeterministic order" in logged
    with pytest.raises(ConfigError, match="--data_service feeds one trainer"):
        plan.make_plan(config._replace(strategy="mirrored"))


@pytest.mark.slow
def test_the_only_worker_killed_mid_epoch_stops_the_run_naming_what_was_lost(tmp_path):
    """One worker, SIGKILLed as epoch 2 starts: its images of that epoch are lost for
    certain, so the run must stop saying so, within the dispatcher's worker timeout."""
    data = str(tmp_path / "data")
    synthetic.write_dataset(data, 20, size=150, seed=1)  # 48 images at 150x150 an epoch
    with service(workers=1, worker_timeout=2.0) as (address, workers):
        trainer = train_through(data, tmp_path / "run", address, "--data_service_timeout=10")
        try:
            read_until(trainer, "epoch 2/4 started")
            workers[0].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            output = trainer.communicate(timeout=180)[0]
        finally:  # a trainer that hangs must not outlive the test
            trainer.kill()
            trainer.wait()
    assert time.monotonic() - killed < 60  # 10 s without a batch, then the stop
    assert trainer.returncode == 1 and "Traceback" not in output
    assert (
        f"error: the tf.data service at {address.removeprefix('grpc://')} sent no batch" in output
    )
    assert "are its workers gone?; the run is saved up to epoch 1: rerun the same command" in output


def train_through(data, model_dir, address, *extra):
    """`python -m rps_tfdata.train` through the service: 4 epochs of 48 images at 150x150."""
    return subprocess.Popen(
        [sys.executable, "-m", "rps_tfdata.train", f"--data_dir={data}"]
        + [f"--model_dir={model_dir}", f"--data_service={address}", "--epochs=4"]
        + ["--batch_size=4", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def read_until(process, text):
    """The process's output up to the first line holding `text`."""
    output = ""
    for line in process.stdout:
        output += line
        if text in line:
            return output
    raise AssertionError(f"{text!r} never came; output:\n{output[-3000:]}")


@pytest.mark.slow
def test_a_dead_dispatcher_stops_trainer_and_worker_in_bounded_time(tmp_path):
    data = str(tmp_path / "data")
    synthetic.write_dataset(data, 20, size=150, seed=1)
    port = free_port()
    dispatcher = serve("--dispatcher", f"--port={port}")
    worker = serve(
        "--worker", f"--dispatcher_address=127.0.0.1:{port}", "--data_service_timeout=10"
    )
    address = f"grpc://127.0.0.1:{port}"
    trainer = train_through(data, tmp_path / "run", address, "--data_service_timeout=10")
    try:
        read_until(trainer, "epoch 2/4 started")
        dispatcher.send_signal(signal.SIGKILL)
        dispatcher.wait()
        killed = time.monotonic()
        output = trainer.communicate(timeout=120)[0]
        assert time.monotonic() - killed < 60  # 10 s of silence, then the stop
        assert worker.wait(timeout=60) == 1
    finally:
        for process in (trainer, worker, dispatcher):
            process.kill()
            process.wait()
    assert trainer.returncode == 1 and "Traceback" not in output
    assert (
        f"error: the tf.data service dispatcher at 127.0.0.1:{port} is gone (no answer for 10 s, "
        "--data_service_timeout); the run is saved up to epoch 1: rerun the same command"
    ) in output
    # The same command, once a dispatcher serves the address again, continues the run.
    with service(workers=1, port=port) as (address, _):
        trainer = train_through(data, tmp_path / "run", address)
        try:
            output = trainer.communicate(timeout=300)[0]
        finally:
            trainer.kill()
            trainer.wait()
    assert trainer.returncode == 0, output[-3000:]
    assert "after epoch 1" in output and "epoch 4/4:" in output and "epoch 1/4:" not in output


@pytest.mark.slow
def test_a_dispatcher_restarted_from_its_work_dir_keeps_the_run_going(tmp_path):
    data = str(tmp_path / "data")
    synthetic.write_dataset(data, 20, size=150, seed=1)
    port = free_port()
    journal = f"--work_dir={tmp_path / 'journal'}"
    processes = [serve("--dispatcher", f"--port={port}", journal)]
    processes.append(serve("--worker", f"--dispatcher_address=127.0.0.1:{port}"))
    trainer = train_through(data, tmp_path / "run", f"grpc://127.0.0.1:{port}")
    processes.append(trainer)
    try:
        read_until(trainer, "epoch 2/4 started")
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait()
        processes.append(serve("--dispatcher", f"--port={port}", journal))  # same journal
        output = trainer.communicate(timeout=300)[0]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert trainer.returncode == 0, output[-3000:]
    assert "epoch 4/4:" in output


@pytest.mark.slow
def test_the_service_benchmark_measures_local_and_service_epochs(data_dir):
    from rps_tfdata.bench import benchmarks

    config = config_lib.TrainConfig(
        data_dir=data_dir,
        model_dir="",
        image_size=48,
        batch_size=8,
        augment_on="device",  # the workers do not augment: uint8 crosses
        data_service_compression="none",
    )
    settings = benchmarks.Settings(repeats=1, steady_epochs=1)
    results, traffic = benchmarks.measure_service(config, 1, settings)
    assert sorted(results) == ["service_0_workers", "service_1_workers"]
    assert all(rate.median > 0 and len(rate.samples) == 1 for rate in results.values())
    assert traffic["pixel_bytes_per_image"] == 48 * 48 * 3  # uint8
    # Measured on the loopback interface; on 48 images, mostly the job's fixed costs.
    assert traffic["service_1_workers_bytes_per_image"] > 48 * 48 * 3


@pytest.mark.slow
def test_the_service_benchmark_reads_through_a_running_dispatcher(data_dir):
    from rps_tfdata.bench import benchmarks

    settings = benchmarks.Settings(repeats=1, steady_epochs=1)
    with service(workers=1) as (address, _):
        config = small_run(data_dir, "", data_service=address)
        results, _ = benchmarks.measure_service(config, 3, settings)  # none started here
    assert sorted(results) == ["service_0_workers", "service_external"]
    assert all(rate.median > 0 and len(rate.samples) == 1 for rate in results.values())


@pytest.mark.slow
def test_a_file_that_fails_to_decode_on_a_worker_is_counted_by_the_trainer(tmp_path, caplog):
    """The trainer screens headers only; the worker that decodes the file gives its place
    a blank with no label, and the trainer's epoch counts it and says so."""
    from .test_bad_images import corrupt_png

    root = tmp_path / "data"
    synthetic.write_dataset(str(root), 10, size=48, seed=9)
    (root / "rock" / "zz-corrupt.png").write_bytes(corrupt_png())  # last: a training file
    with service(workers=1) as (address, _):
        metrics = training.train_and_evaluate(service_config(str(root), tmp_path / "run", address))
    assert metrics["finished"] and metrics["num_train_images"] == 25
    warnings = [r.getMessage() for r in caplog.records if "could not be decoded" in r.getMessage()]
    assert len(warnings) == 2 and all("1 training image(s)" in w for w in warnings)
    assert all("tf.data service workers' logs" in w for w in warnings)
    assert any(r["path"].endswith("zz-corrupt.png") for r in metrics["skipped_images"])


@pytest.mark.slow
def test_workers_read_file_urls_and_a_disk_cache_under_a_url_run_folder(data_dir, tmp_path):
    """The workers read what the trainer names: `file://` URLs of the data and of the
    run folder's --image_cache=disk folder (a bucket works through the same gfile calls)."""
    with service(workers=1) as (address, _):
        config = service_config(
            f"file://{data_dir}", f"file://{tmp_path}/run", address, image_cache="disk"
        )
        metrics = training.train_and_evaluate(config)
    assert metrics["finished"] and metrics["num_train_images"] == 24
    cache = tmp_path / "run" / plan.DISK_CACHE_FOLDER
    filled = [name for name in os.listdir(cache) if name.startswith("train-")]
    assert len(filled) == 1 and len(os.listdir(cache / filled[0])) > 24  # raw files + list
