"""The benchmark's measurements: this package against the seed's ImageDataGenerator
pipeline, on the same files, in the same run.

Modes:
  pipeline  images/s of the training input pipeline alone, augmentation included: the
            first epoch (cold: decode-bound) and later epochs (steady: cached), and the
            augmentation kernel alone on in-memory tensors (the pipeline's ceiling);
  step      images/s of the train step on in-memory synthetic tensors (the model's
            ceiling on this device: tf_cnn_benchmarks' synthetic mode);
  e2e       images/s of `fit` on the real pipeline, after a warm-up epoch, and the input
            stall (how far e2e falls below step);
  all       pipeline, step and e2e;
  parity    the side-by-side learning run of `rps_tfdata.bench.parity`.
A baseline adds the seed's pipeline on the same files (pipeline and e2e) and the ratios
ours/seed.
"""

from typing import Any, Callable, NamedTuple

import tensorflow as tf
from absl import logging

from rps_tfdata.bench import seed_reference, throughput
from rps_tfdata.core import timing, training

MODES = ("pipeline", "step", "e2e", "all", "parity")


class Settings(NamedTuple):
    """How much each measurement runs; the benchmark's flags of the same names."""

    repeats: int = 3
    steady_epochs: int = 3  # pipeline: cached epochs timed after the cold one
    e2e_epochs: int = 2  # e2e: epochs of fit, the first one warm-up
    steps: int = 12  # step: train steps per repeat
    window: int = 10  # e2e: batches per timed window


def idg_train_iterator(config: training.TrainConfig):
    """The seed's augmented training iterator over the same files."""
    return seed_reference.seed_iterators(
        config.train_dir,
        image_size=config.input.image_size[0],
        batch_size=config.input.batch_size,
        seed=config.seed,
    ).train


def bench_pipeline(
    config: training.TrainConfig, data: training.Data, baseline: bool, settings: Settings
) -> dict:
    """Input pipeline images/s: cold, steady, the augmentation kernel, and the seed's."""
    batch_size, repeats = config.input.batch_size, settings.repeats
    # One layer for every repeat: its XLA compilation is warm-up, not pipeline time.
    layer = None if training.augments_on_device(config) else training.make_augmentation(config)
    cold, steady = throughput.time_epochs(
        lambda: training.make_train_dataset(config, data, layer),
        epochs=1 + settings.steady_epochs,
        repeats=repeats,
    )
    results = {"pipeline_cold": cold, "pipeline_steady": steady}
    if layer is not None:
        batch = tf.random.uniform((batch_size, *config.input.image_size, 3), 0, 255)
        seed = tf.constant([1, 2], tf.int64)
        results["augment_kernel"] = throughput.time_batches(
            lambda: layer(batch, training=True, seed=seed).numpy(),
            batch_size,
            batches=20,
            repeats=repeats,
        )
    if baseline:
        iterator = idg_train_iterator(config)
        results["idg_pipeline"] = throughput.time_batches(
            lambda: next(iterator), batch_size, batches=len(iterator), repeats=repeats
        )
    return results


def bench_step(config: training.TrainConfig, num_classes: int, settings: Settings) -> dict:
    """The train step alone, on in-memory tensors."""
    rate = throughput.time_train_step(
        training.make_model(config, num_classes),
        config.input.image_size,
        num_classes,
        batch_size=config.input.batch_size,
        steps=settings.steps,
        repeats=settings.repeats,
    )
    return {"step": rate}


def bench_e2e(
    config: training.TrainConfig, data: training.Data, baseline: bool, settings: Settings
) -> dict:
    """`fit` on the real pipeline (and on the seed's), after one warm-up epoch."""
    num_classes = len(data.train.class_names)
    timing_args = dict(
        epochs=settings.e2e_epochs, batch_size=config.input.batch_size, window=settings.window
    )
    train_ds, _ = training.make_datasets(config, data)
    results = {
        "e2e": throughput.time_fit(
            training.make_model(config, num_classes), train_ds, shuffle=False, **timing_args
        )
    }
    if baseline:
        results["idg_e2e"] = throughput.time_fit(
            training.make_model(config, num_classes), idg_train_iterator(config), **timing_args
        )
    return results


def flatten(results: dict[str, throughput.Rate]) -> dict[str, Any]:
    """One flat JSON object: medians as `<name>_images_per_sec`, spreads, and ratios."""
    flat: dict[str, Any] = {}
    for name, rate in results.items():
        flat[f"{name}_images_per_sec"] = rate.median
        flat[f"{name}_images_per_sec_low"] = rate.low
        flat[f"{name}_images_per_sec_high"] = rate.high
    ratios = {
        "pipeline_steady_vs_idg": ("pipeline_steady", "idg_pipeline"),
        "pipeline_cold_vs_idg": ("pipeline_cold", "idg_pipeline"),
        "pipeline_steady_vs_augment_kernel": ("pipeline_steady", "augment_kernel"),
        "e2e_vs_idg_e2e": ("e2e", "idg_e2e"),
        "e2e_vs_step": ("e2e", "step"),
    }
    for name, (ours, theirs) in ratios.items():
        if ours in results and theirs in results:
            flat[name] = results[ours].median / results[theirs].median
    return flat


def header(config: training.TrainConfig, mode: str) -> dict[str, Any]:
    """What a report states before its figures: versions, devices, settings, memory."""
    return {
        **throughput.environment(),
        "data_dir": config.train_dir,
        "mode": mode,
        "image_size": config.input.image_size[0],
        "batch_size": config.input.batch_size,
        "augment_on": training.resolve_augment_on(config.augment_on),
        "mixed_precision": config.precision,
        "jit_compile": config.jit_compile,
        "image_cache": config.input.cache,
        "peak_rss_mb": round(timing.peak_rss_mb(), 1),
    }


def report(results: dict[str, throughput.Rate], head: dict[str, Any]) -> str:
    """The printed report: header lines, one line per figure, then the ratios."""
    lines = [f"{key}: {value}" for key, value in head.items()]
    lines += [f"{name:>16}: {rate}" for name, rate in results.items()]
    lines += [f"{k:>34}: {v:.3f}" for k, v in flatten(results).items() if "_vs_" in k]
    return "\n".join(lines)


def run_benchmarks(
    mode: str, config: training.TrainConfig, *, baseline: bool, settings: Settings
) -> dict[str, throughput.Rate]:
    """Runs the measurements `mode` asks for, logging each figure as it is done."""
    training.check_config(config)
    data = training.load_data(config)
    stages: list[tuple[str, Callable[[], dict]]] = [
        ("pipeline", lambda: bench_pipeline(config, data, baseline, settings)),
        ("step", lambda: bench_step(config, len(data.train.class_names), settings)),
        ("e2e", lambda: bench_e2e(config, data, baseline, settings)),
    ]
    results: dict[str, throughput.Rate] = {}
    for name, measure in stages:
        if mode in (name, "all"):
            logging.info("measuring %s ...", name)
            for key, rate in measure().items():
                logging.info("%s: %s", key, rate)
                results[key] = rate
    return results
