"""The benchmark's measurements: this package against the seed's ImageDataGenerator
pipeline, on the same files, in the same run.

Modes:
  pipeline  images/s of the training input pipeline alone, augmentation included: the
            first read of every file (cold: scan and decode), the first epoch (that
            read and one pass), the epochs after it (steady: cached), the augmentation
            kernel alone, beside Keras' preprocessing-layers
            route and the bare decoder, round by round
            (`rps_tfdata.bench.pipeline_routes`);
  step      images/s of the train step on in-memory synthetic tensors (the model's
            ceiling on this device: tf_cnn_benchmarks' synthetic mode);
  e2e       images/s of the training loop on the real pipeline, after a warm-up epoch,
            and the input stall (how far e2e falls below step): per step, each one
            waited for (e2e), and per epoch as `train` runs it, `--steps_per_loop`
            steps a call (e2e_loop);
  all       pipeline, step and e2e;
  parity    the side-by-side learning run of `rps_tfdata.bench.parity`;
  memory    how much resident memory the training split's cache and `--e2e_epochs`
            epochs of the input pipeline add (run once per `--image_cache`);
  service   images/s of training epochs read here (0 workers) and through a tf.data
            service of 1..`--data_service_workers` local worker processes, decoding
            every epoch in all cases (no memory cache can be shipped to workers);
  serving   images/s of the exported SavedModel's signature on a batch of 32 encoded
            files, against `predict`'s path (read, check, decode, predict) on the same;
  fit       images/s of `model.fit` epochs of a small model through IDG, the Keras route
            and the drop-in `rps_tfdata.image`, `--e2e_epochs` each, interleaved
            (`rps_tfdata.bench.fit_routes`);
  first_batch  seconds from `flow_from_directory` to the first batch in hand, IDG's
            flow and the drop-in's in turns (`rps_tfdata.bench.first_batch`).
A baseline adds the seed's pipeline on the same files (pipeline and e2e) and the ratios
ours/seed.
"""

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging

from rps_tfdata.bench import first_batch, fit_routes, pipeline_routes, seed_reference, throughput
from rps_tfdata.infra import resources
from rps_tfdata.pipeline import passes
from rps_tfdata.serving import saved_model
from rps_tfdata.serving.finished import Run
from rps_tfdata.trainer import config as config_lib
from rps_tfdata.trainer import datasets, evaluation, inputs, loop, tf_data_service, training
from rps_tfdata.trainer import model as model_lib
from rps_tfdata.trainer import plan as plan_lib


class Subject(NamedTuple):
    """What is measured: the run's settings, its plan on one device (the benchmarks
    measure one device), and its data source (the one door for data)."""

    config: config_lib.TrainConfig
    plan: plan_lib.Plan
    source: datasets.Source


def subject_of(config: config_lib.TrainConfig) -> Subject:
    """`config` planned on one device, with its source opened."""
    source = datasets.open_source(config)
    plan = plan_lib.make_plan(
        config, image_counts=source.image_counts, strategy_override="one_device"
    )
    return Subject(config, plan, source)


class Settings(NamedTuple):
    """How much each measurement runs; the benchmark's flags of the same names."""

    repeats: int = 3
    steady_epochs: int = 3  # pipeline: cached epochs timed after the cold one
    e2e_epochs: int = 2  # e2e: epochs of the training loop, the first one warm-up
    steps: int = 12  # step: train steps per repeat
    window: int = 10  # e2e: batches per timed window


def idg_train_iterator(config: config_lib.TrainConfig, *, rescale: bool = True):
    """The seed's augmented training iterator over the same files (`rescale=False`: for
    our train step, which rescales)."""
    return seed_reference.seed_iterators(
        config.data_dir,
        image_size=config.image_size,
        batch_size=config.batch_size,
        seed=config.seed,
        rescale=rescale,
    ).train


class Bench(NamedTuple):
    """One benchmark run's subject, its data read once and its steps built once (the
    model's weights do not change the speed; warm-up is left out of every figure)."""

    subject: Subject
    data: datasets.Data
    steps: loop.Steps
    settings: Settings

    @property
    def config(self) -> config_lib.TrainConfig:
        return self.subject.config

    @property
    def plan(self) -> plan_lib.Plan:
        return self.subject.plan


def bench_pipeline(bench: Bench, baseline: bool) -> dict:
    """The input pipeline alone beside Keras' route, the bare decoder and, with the
    baseline, the seed's (`rps_tfdata.bench.pipeline_routes`)."""
    idg = idg_train_iterator(bench.config) if baseline else None
    return pipeline_routes.measure(
        bench.config,
        bench.plan,
        bench.data.train,
        repeats=bench.settings.repeats,
        passes=bench.settings.steady_epochs,
        idg_iterator=idg,
    )


def bench_step(bench: Bench) -> dict:
    """The train step alone, on one in-memory batch (no input cost): the model's ceiling."""
    settings, num_classes = bench.settings, len(bench.data.class_names)
    rng = np.random.default_rng(0)
    batch_size = bench.config.batch_size
    shape = (batch_size, *bench.plan.input.image_size, 3)
    images = tf.constant(rng.integers(0, 256, shape, np.uint8))  # as the pipeline feeds it
    labels = tf.one_hot(rng.integers(num_classes, size=batch_size), num_classes)
    seeds = tf.zeros((batch_size, 2), tf.int64)
    rate = throughput.time_training(
        bench.steps.train,
        itertools.repeat((images, labels, seeds)),
        epochs=settings.repeats + 1,
        steps_per_epoch=settings.steps,
        batch_size=batch_size,
        window=settings.steps - 2,
    )
    return {"step": rate}


def _with_seeds(iterator):
    """The seed's (images, labels) batches with the unused per-image seeds of our step."""
    for images, labels in iterator:
        yield images, labels, np.zeros((len(images), 2), np.int64)


def bench_e2e(bench: Bench, baseline: bool) -> dict:
    """The training loop on the real pipeline (and on the seed's), after a warm-up epoch."""
    config, settings, train = bench.config, bench.settings, bench.data.train
    timing = dict(
        epochs=settings.e2e_epochs,
        steps_per_epoch=inputs.batch_count(train),
        batch_size=config.batch_size,
        window=settings.window,
    )
    ours = inputs.training_batches(
        train,
        seed=config.seed,
        end_epoch=settings.e2e_epochs,
        augmentation=bench.plan.host_augmentation,
    )
    results = {"e2e": throughput.time_training(bench.steps.train, iter(ours), **timing)}
    if baseline:
        theirs = _with_seeds(idg_train_iterator(config, rescale=False))
        results["idg_e2e"] = throughput.time_training(bench.steps.train, theirs, **timing)
    return results


def bench_loop(bench: Bench) -> dict:
    """The training loop as `train` runs it (`loop.run_epoch`: --steps_per_loop steps a
    call, the host reading once per call): images/s of whole epochs after a warm-up one."""
    config, train = bench.config, bench.data.train
    count = bench.settings.repeats + 1
    batches = iter(
        inputs.training_batches(
            train, seed=config.seed, end_epoch=count, augmentation=bench.plan.host_augmentation
        )
    )
    samples = []
    controls = loop.EpochControls(steps_per_loop=config.steps_per_loop)
    steps_per_epoch = inputs.batch_count(train)
    for epoch in range(count):
        result = loop.run_epoch(bench.steps, batches, steps_per_epoch, controls)
        if epoch:
            samples.append(result.images / result.seconds)
    return {"e2e_loop": throughput.rate_of(samples)}


def measure_memory(subject: Subject, num_epochs: int) -> dict[str, Any]:
    """How much resident memory the training split's cache and `epochs` epochs add.

    Everything is warmed up first on a few files, so the growth is the data's: with
    `image_cache="memory"` it grows with the set (the pixels), with "disk" it should not.
    """
    config, plan = subject.config, subject.plan
    split, _, _ = subject.source.splits()
    options, layer = plan.input, plan.host_augmentation
    classes = len(split.class_names)
    few = inputs.read(split.paths[:8], split.labels, classes, options._replace(cache="none"))
    for _ in inputs.training_batches(few, seed=config.seed, augmentation=layer):
        pass
    before = resources.current_rss_mb()
    train = inputs.read(split.paths, split.labels, classes, options, name="train")
    after_prepare = resources.current_rss_mb()
    for _ in inputs.training_batches(
        train, seed=config.seed, end_epoch=num_epochs, augmentation=layer
    ):
        pass
    return {
        "images": train.prepared.count,
        "image_cache": options.cache,
        "rss_before_mb": round(before, 1),
        "rss_growth_after_prepare_mb": round(after_prepare - before, 1),
        "rss_growth_after_epochs_mb": round(resources.current_rss_mb() - before, 1),
        "peak_rss_mb": round(resources.peak_rss_mb(), 1),
    }


@contextlib.contextmanager
def local_service(workers: int) -> Iterator[str]:
    """A dispatcher and `workers` worker processes on 127.0.0.1; yields its address.
    Stopped by their processes at the end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "rps_tfdata.data_service"]
    processes = []
    try:
        for args in [["--dispatcher", f"--port={port}"]] + [
            ["--worker", f"--dispatcher_address=127.0.0.1:{port}"]
        ] * workers:
            process = subprocess.Popen(
                command + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            processes.append(process)
            process.stdout.readline()  # "... ready ..."
        yield f"grpc://127.0.0.1:{port}"
    finally:
        for process in processes:
            process.kill()
            process.wait()


def measure_service(
    subject: Subject, max_workers: int, settings: Settings
) -> tuple[dict[str, throughput.Rate], dict[str, Any]]:
    """Images/s of `settings.steady_epochs` epochs per repeat, read here and through the
    service: through 1..max_workers workers started here, or, when `config.data_service`
    names a running dispatcher, through its workers (`service_external`). Images are
    decoded every epoch in each case. Also returns the bytes per image that crossed the
    loopback interface for each service target (local workers only: an external
    dispatcher's workers may send over another interface)."""
    config, plan = subject.config, subject.plan
    split, _, _ = subject.source.splits()
    options = plan.input._replace(cache="none", deterministic=False)
    classes = len(split.class_names)  # headers screened; the epochs decode, as in training
    train = inputs.read(split.paths, split.labels, classes, options, decode=False)
    targets = [("service_0_workers", contextlib.nullcontext(""))]
    if config.data_service:
        targets.append(("service_external", contextlib.nullcontext(config.data_service)))
    else:
        targets += [(f"service_{n}_workers", local_service(n)) for n in range(1, max_workers + 1)]
    rates, traffic = {}, {}
    for name, service in targets:
        with service as address:
            before = throughput.loopback_bytes()
            rates[name], images = _epochs_through(train, config, plan, address, settings)
            after = throughput.loopback_bytes()
        if address and before is not None and name != "service_external":
            traffic[f"{name}_bytes_per_image"] = round((after - before) / images)
        logging.info("%s: %s", name, rates[name])
    element = np.dtype(passes.pixel_dtype(plan.host_augmentation).as_numpy_dtype).itemsize
    traffic["pixel_bytes_per_image"] = element * 3 * config.image_size**2
    traffic["compression"] = config.data_service_compression
    return rates, traffic


def _epochs_through(train, config: config_lib.TrainConfig, plan, address: str, settings):
    """The rate of epochs read here (`address` "") or through the service at `address`,
    and the images read in all; the first epoch warms up (tracing, compilation, worker
    start) and is not counted in the rate."""
    samples, total = [], 0
    for epoch in range(settings.steady_epochs * settings.repeats + 1):
        dataset = inputs.epoch_batches(
            train, epoch, seed=config.seed, augmentation=plan.host_augmentation
        )
        if address:
            job = f"{tf_data_service.job_prefix()}-{epoch}"
            compression = config.data_service_compression
            dataset = tf_data_service.distribute(dataset, address, job, compression)
        start = time.perf_counter()
        # Images, not rows: each worker pads its last batch with blanks (seeds NO_IMAGE).
        count = sum(int(np.sum(seeds[:, 1] != passes.NO_IMAGE)) for _, _, seeds in dataset)
        total += count
        if epoch:
            samples.append(count / (time.perf_counter() - start))
    return throughput.rate_of(samples), total


def measure_serving(subject: Subject, settings: Settings) -> dict:
    """The export's signature on 32 encoded files vs the predict path on the same files
    (an untrained CNN: the weights do not change the speed)."""
    split, _, _ = subject.source.splits()
    paths = split.paths[:32]
    options = subject.plan.input._replace(cache="memory")
    model = model_lib.build_model(options.image_size, len(split.class_names))
    run = Run(model, split.class_names, options)
    out = os.path.join(subject.config.model_dir, saved_model.EXPORT_FOLDER)
    serve = tf.saved_model.load(saved_model.write(run, out)).signatures["serving_default"]
    encoded = tf.constant([tf.io.read_file(p).numpy() for p in paths])
    return {
        "serving_signature": throughput.time_batches(
            lambda: serve(images=encoded)["probabilities"].numpy(),
            len(paths),
            batches=5,
            repeats=settings.repeats,
        ),
        "predict_files": throughput.time_batches(
            lambda: evaluation.classify(run, paths), len(paths), batches=5, repeats=settings.repeats
        ),
    }


def flatten(results: dict[str, throughput.Rate]) -> dict[str, Any]:
    """One flat JSON object: medians as `<name>_images_per_sec`, spreads, and ratios."""
    flat: dict[str, Any] = {}
    for name, rate in results.items():
        flat[f"{name}_images_per_sec"] = rate.median
        flat[f"{name}_images_per_sec_low"] = rate.low
        flat[f"{name}_images_per_sec_high"] = rate.high
    ratios = {
        **pipeline_routes.RATIOS,
        "serving_signature_vs_predict_files": ("serving_signature", "predict_files"),
        "e2e_vs_idg_e2e": ("e2e", "idg_e2e"),
        "e2e_vs_step": ("e2e", "step"),
        "e2e_loop_vs_step": ("e2e_loop", "step"),
        **fit_routes.RATIOS,
    }
    for name, (ours, theirs) in ratios.items():
        if ours in results and theirs in results:
            flat[name] = results[ours].median / results[theirs].median
    return flat


def header(subject: Subject, mode: str) -> dict[str, Any]:
    """What a report states before its figures: versions, devices, settings as the plan
    resolved them, memory."""
    config, plan = subject.config, subject.plan
    return {
        **throughput.environment(),
        "data_dir": config.data_dir,
        "mode": mode,
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "augment_on": "device" if plan.augment_on_device else "host",
        "mixed_precision": config.mixed_precision,
        "jit_compile": plan.xla,
        "image_cache": plan.input.cache,
        "peak_rss_mb": round(resources.peak_rss_mb(), 1),
    }


def report(results: dict[str, throughput.Rate], head: dict[str, Any]) -> str:
    """The printed report: header lines, one line per figure, then the ratios."""
    lines = [f"{key}: {value}" for key, value in head.items()]
    lines += [f"{name:>16}: {rate}" for name, rate in results.items()]
    lines += [f"{k:>34}: {v:.3f}" for k, v in flatten(results).items() if "_vs_" in k]
    return "\n".join(lines)


def run_benchmarks(
    mode: str, subject: Subject, *, baseline: bool, settings: Settings
) -> dict[str, throughput.Rate]:
    """Runs the measurements `mode` asks for, logging each figure as it is done."""
    config, plan = subject.config, subject.plan
    data = subject.source.load(plan.worker, plan.input)
    steps = training.build(config, plan, len(data.class_names), data).steps
    bench = Bench(subject, data, steps, settings)
    stages: list[tuple[str, Callable[[], dict]]] = [
        ("pipeline", lambda: bench_pipeline(bench, baseline)),
        ("step", lambda: bench_step(bench)),
        ("e2e", lambda: {**bench_e2e(bench, baseline), **bench_loop(bench)}),
    ]
    results: dict[str, throughput.Rate] = {}
    for name, measure in stages:
        if mode in (name, "all"):
            logging.info("measuring %s ...", name)
            for key, rate in measure().items():
                logging.info("%s: %s", key, rate)
                results[key] = rate
    return results


def measure(
    mode: str, subject: Subject, settings: Settings, *, baseline: bool, service_workers: int
) -> tuple[dict[str, Any], dict[str, throughput.Rate]]:
    """Runs one mode of the benchmark (any but "parity", which trains its own runs):
    returns the report's header (with the mode's own figures: memory, traffic) and its
    rates."""
    extra: dict[str, Any] = {}
    rates: dict[str, throughput.Rate] = {}
    if mode == "memory":
        extra = measure_memory(subject, settings.e2e_epochs)
    elif mode == "service":
        rates, extra = measure_service(subject, service_workers, settings)
    elif mode == "serving":
        rates = measure_serving(subject, settings)
    elif mode == "fit":
        rates = fit_routes.measure(subject.config, settings.e2e_epochs, settings.repeats)
    elif mode == "first_batch":
        config = subject.config
        extra = first_batch.measure(
            config.data_dir, config.image_size, config.batch_size, settings.repeats
        )
    else:
        rates = run_benchmarks(mode, subject, baseline=baseline, settings=settings)
    return {**header(subject, mode), **extra}, rates
