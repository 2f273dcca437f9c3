"""The tf.data service: a dispatcher and two workers started on 127.0.0.1 by the test."""

import os
import re
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from rps_tfdata.infra.errors import ConfigError
from rps_tfdata.pipeline import options as options_lib
from rps_tfdata.pipeline import passes
from rps_tfdata.pipeline.reading import listing
from rps_tfdata.trainer import config as config_lib
from rps_tfdata.trainer import inputs, plan, synthetic_hands, tf_data_service, training

from . import sandbox
from .helpers import (
    corrupt_png,
    free_ports,
    launch,
    module,
    read_until,
    serve,
    service,
    small_run,
    stopped_at_exit,
)


def serve_on(host, *args):
    """`serve` on a host of `sandbox.network`."""
    return serve(*args, prefix=sandbox.in_namespace(host.host))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("service_data"))
    synthetic_hands.write_dataset(out, 10, size=48, seed=9)
    return out


def service_config(data_dir, model_dir, address, **changes):
    """A service run that leaves the image cache and the order at their defaults."""
    return small_run(data_dir, model_dir, data_service=address, **{"epochs": 2, **changes})


@pytest.mark.slow
def test_an_epoch_through_two_workers_holds_each_training_image_once(data_dir, tmp_path):
    split = listing.list_split(data_dir, 0.2, "training")
    options = options_lib.PipelineOptions(image_size=(48, 48), batch_size=4, cache="none")
    prepared = inputs.read(split.paths, split.labels, 3, options)
    with service() as (address, _):
        epoch = inputs.epoch_batches(prepared, 0, seed=2)
        delivered = tf_data_service.distribute(epoch, address, tf_data_service.job_prefix())
        assert delivered.element_spec[0].dtype == tf.uint8  # not augmented there: uint8
        ids = np.concatenate([seeds.numpy()[:, 1] for _, _, seeds in delivered])
        ids = ids[ids != passes.NO_IMAGE]  # the padding of each worker's last batch
        assert sorted(ids % (1 << 32)) == list(range(len(split.paths)))  # 24, once each
        metrics = training.train_and_evaluate(service_config(data_dir, tmp_path / "run", address))
    assert metrics["finished"] and metrics["epochs_run"] == 2
    assert metrics["num_train_images"] == 24


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"image_cache": "memory"}, "use --image_cache=none or --image_cache=disk"),
        ({"deterministic": True}, "gives up the order of images .*: drop --deterministic"),
        ({"steps_per_loop": 4}, "--steps_per_loop runs several steps"),
        ({"checkpoint_every": 3}, "--checkpoint_every needs the local pipeline"),
    ],
)
def test_what_the_user_asked_for_explicitly_is_refused_when_it_cannot_hold(
    data_dir, tmp_path, changes, message
):
    config = service_config(data_dir, tmp_path, "grpc://127.0.0.1:1", **changes)
    with pytest.raises(ConfigError, match=message):
        config_lib.check_config(config)


@pytest.mark.slow
def test_the_only_worker_killed_mid_epoch_stops_the_run_naming_what_was_lost(tmp_path):
    """One worker, SIGKILLed as epoch 2 starts: its images of that epoch are lost for
    certain, so the run must stop saying so, within the dispatcher's worker timeout."""
    data = str(tmp_path / "data")
    synthetic_hands.write_dataset(data, 20, size=150, seed=1)  # 48 images at 150x150 an epoch
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


def train_through(data, model_dir, address, *extra, prefix=()):
    """`python -m rps_tfdata.train` through the service: 4 epochs of 48 images at 150x150."""
    flags = [f"--data_dir={data}", f"--model_dir={model_dir}", f"--data_service={address}"]
    arguments = module("train", *flags, "--epochs=4", "--batch_size=4", *extra)
    return launch(arguments, merge=True, prefix=prefix)


@pytest.mark.slow
def test_a_dead_dispatcher_stops_trainer_and_worker_in_bounded_time(tmp_path):
    data = str(tmp_path / "data")
    synthetic_hands.write_dataset(data, 20, size=150, seed=1)
    port = free_ports()[0]
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
    synthetic_hands.write_dataset(data, 20, size=150, seed=1)
    port = free_ports()[0]
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
    from rps_tfdata.bench import measurements

    # The workers do not augment (the step does): uint8 crosses.
    config = small_run(data_dir, "", augment_on="device", data_service_compression="none")
    settings = measurements.Settings(repeats=1, steady_epochs=1)
    results, traffic = measurements.measure_service(measurements.subject_of(config), 1, settings)
    assert sorted(results) == ["service_0_workers", "service_1_workers"]
    assert all(rate.median > 0 and len(rate.samples) == 1 for rate in results.values())
    assert traffic["pixel_bytes_per_image"] == 48 * 48 * 3  # uint8
    # Measured on the loopback interface; on 48 images, mostly the job's fixed costs.
    assert traffic["service_1_workers_bytes_per_image"] > 48 * 48 * 3


@pytest.mark.slow
def test_the_service_benchmark_reads_through_a_running_dispatcher(data_dir):
    from rps_tfdata.bench import measurements

    settings = measurements.Settings(repeats=1, steady_epochs=1)
    with service(workers=1) as (address, _):
        config = small_run(data_dir, "", data_service=address)
        subject = measurements.subject_of(config)
        results, _ = measurements.measure_service(subject, 3, settings)  # none started here
    assert sorted(results) == ["service_0_workers", "service_external"]
    assert all(rate.median > 0 and len(rate.samples) == 1 for rate in results.values())


@pytest.mark.slow
def test_a_file_that_fails_to_decode_on_a_worker_is_counted_by_the_trainer(tmp_path, caplog):
    """The trainer screens headers only; the worker that decodes the file gives its place
    a blank with no label, and the trainer's epoch counts it and says so."""
    root = tmp_path / "data"
    synthetic_hands.write_dataset(str(root), 10, size=48, seed=9)
    (root / "rock" / "zz-corrupt.png").write_bytes(corrupt_png())  # last: a training file
    with service(workers=1) as (address, _):
        metrics = training.train_and_evaluate(service_config(str(root), tmp_path / "run", address))
    # 25 training files, of which the corrupt one is not counted: no epoch decoded it.
    assert metrics["finished"] and metrics["num_train_images"] == 24
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


def workers_on(hosts, dispatcher):
    """A tf.data service worker on each of `hosts`, reached at its host's address."""
    return [
        serve_on(host, "--worker", f"--dispatcher_address={dispatcher}", "--port=5051",
                 f"--worker_host={host.address}", "--data_service_timeout=10")
        for host in hosts
    ]  # fmt: skip


@pytest.mark.slow
def test_hosts_of_their_own_a_worker_cut_off_then_the_dispatcher_and_never_a_hang(tmp_path):
    """A dispatcher, two workers and a trainer, each on a host of its own (a network
    namespace with its own address on a switch). Worker 1's cable cut as epoch 2 starts
    (packets dropped, nothing reset): the epoch completes from worker 2, or the run stops
    saying what was lost. Then the dispatcher's cable cut: the trainer stops with the
    --data_service_timeout line. Never a hang; once the cables are back, the command with
    new workers ends the run."""
    data = str(tmp_path / "data")
    synthetic_hands.write_dataset(data, 20, size=150, seed=1)
    with sandbox.network(4) as (switchboard, *hosts, trainer_host):
        address = f"{switchboard.address}:5050"
        dispatcher = serve_on(switchboard, "--dispatcher", "--port=5050", "--worker_timeout=2")

        def train(timeout=10):
            return train_through(
                data, tmp_path / "run", f"grpc://{address}", f"--data_service_timeout={timeout}",
                prefix=sandbox.in_namespace(trainer_host.host),
            )  # fmt: skip

        with stopped_at_exit(dispatcher):
            workers = workers_on(hosts, address)
            stops = []
            with stopped_at_exit(*workers):
                for cut in (hosts[0], switchboard):
                    trainer = train()
                    with stopped_at_exit(trainer):
                        read_until(trainer, "epoch 2/4 started")
                        sandbox.set_link(cut, up=False)
                        at = time.monotonic()
                        try:
                            output = trainer.communicate(timeout=180)[0]
                        finally:
                            sandbox.set_link(cut, up=True)
                    stops.append((trainer.returncode, output, time.monotonic() - at))
                # each worker lost the dispatcher for longer than its timeout: stopped
                assert [worker.wait(timeout=60) for worker in workers] == [1, 1]
            workers = workers_on(hosts, address)
            with stopped_at_exit(*workers):
                # The new workers, at the old addresses, also serve the stopped trainers'
                # jobs until the dispatcher collects them: on a machine another test loads,
                # their first batch can take longer than the 10 s bound the cuts test.
                last = train(timeout=60)
                with stopped_at_exit(last):
                    ended = last.communicate(timeout=300)[0]
    (worker_status, worker_output, worker_time), (status, output, took) = stops
    assert "Traceback" not in worker_output + output
    if worker_status == 1:  # stopped, saying what the cut worker took with it
        assert re.search(
            r"error: the tf\.data service (delivered \d+ of the 48 training images in epoch 2|"
            r"at \S+ sent no batch for 10 s)",
            worker_output,
        ), worker_output[-3000:]
    else:
        assert worker_status == 0 and "epoch 4/4:" in worker_output, worker_output[-3000:]
    assert status == 1, output[-3000:]
    assert f"error: the tf.data service dispatcher at {address} is gone" in output
    assert worker_time < 90 and took < 90, (worker_time, took)
    assert last.returncode == 0 and "epoch 4/4:" in ended, ended[-3000:]
    print(
        f"stops after the cuts: worker {worker_time:.1f} s (exit {worker_status}), "
        f"dispatcher {took:.1f} s"
    )
