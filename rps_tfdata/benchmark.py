"""Benchmarks: this package against the seed's ImageDataGenerator pipeline, same files, same run.

    python -m rps_tfdata.benchmark --flagfile=flags/bench.flags [--data_dir=PATH]

Modes (`--mode`):
  pipeline  images/s of the training input pipeline alone, augmentation included: the
            first epoch (cold: decode-bound) and later epochs (steady: cached), and the
            augmentation kernel alone on in-memory tensors (the pipeline's ceiling);
  step      images/s of the train step on in-memory synthetic tensors (the model's
            ceiling on this device: tf_cnn_benchmarks' synthetic mode);
  e2e       images/s of `fit` on the real pipeline, after a warm-up epoch, and the input
            stall (how far e2e falls below step);
  all       pipeline, step and e2e;
  parity    the side-by-side learning run of `rps_tfdata.parity`.
`--baseline=idg` adds the seed's pipeline on the same files (pipeline and e2e) and the
ratios ours/seed. Without `--data_dir` it generates synthetic data sized like the real
set (`--per_class=840 --size=300`: 2,520 PNGs of about 80 KB) once, under `--cache_dir`.
The training flags (`--image_size`, `--batch_size`, `--mixed_precision`, `--augment_on`,
`--jit_compile`, `--cache`, ...) apply, so a flagfile describes a benchmark exactly.
"""

import os
from typing import Any, Sequence

import tensorflow as tf
from absl import flags, logging

from rps_tfdata import (
    artifacts,
    cli,
    common_flags,
    parity,
    seed_reference,
    synthetic,
    throughput,
    train,
    training,
)

MODES = ("pipeline", "step", "e2e", "all", "parity")
_MODE = flags.DEFINE_enum("mode", "all", MODES, "What to measure (see the module doc).")
_BASELINE = flags.DEFINE_enum(
    "baseline", "idg", ["none", "idg"], "Also measure the seed's ImageDataGenerator pipeline."
)
_REPEATS = flags.DEFINE_integer(
    "repeats", 3, "Repeats of each measurement (parity: runs per pipeline).", lower_bound=1
)
_STEADY_EPOCHS = flags.DEFINE_integer(
    "steady_epochs", 3, "pipeline: cached epochs timed after the cold one.", lower_bound=1
)
_E2E_EPOCHS = flags.DEFINE_integer(
    "e2e_epochs", 2, "e2e: epochs of fit; the first is warm-up.", lower_bound=2
)
_STEPS = flags.DEFINE_integer("steps", 12, "step: train steps per repeat.", lower_bound=4)
_WINDOW = flags.DEFINE_integer("window", 10, "e2e: batches per timed window.", lower_bound=2)


def resolve_data_dir() -> str:
    """--data_dir, else the synthetic set (written once under --cache_dir)."""
    if common_flags.DATA_DIR.value:
        return common_flags.DATA_DIR.value
    per_class, size = synthetic.PER_CLASS.value, synthetic.SIZE.value
    folder = os.path.join(train.CACHE_DIR.value, f"rps_tfdata_synthetic_{per_class}x{size}")
    marker = os.path.join(folder, ".complete")
    if not os.path.exists(marker):
        print(f"writing {3 * per_class} synthetic {size}x{size} PNGs to {folder} (once)")
        synthetic.write_dataset(folder, per_class, size=size, seed=0)
        open(marker, "w").close()
    return folder


def idg_train_iterator(config: training.TrainConfig):
    """The seed's augmented training iterator over the same files."""
    return seed_reference.seed_iterators(
        config.train_dir,
        image_size=config.input.image_size[0],
        batch_size=config.input.batch_size,
        seed=config.seed,
    ).train


def bench_pipeline(config: training.TrainConfig, data: training.Data, baseline: bool) -> dict:
    """Input pipeline images/s: cold, steady, the augmentation kernel, and the seed's."""
    batch_size = config.input.batch_size
    # One layer for every repeat: its XLA compilation is warm-up, not pipeline time.
    layer = None if training.augments_on_device(config) else training.make_augmentation(config)
    cold, steady = throughput.time_epochs(
        lambda: training.make_train_dataset(config, data, layer),
        epochs=1 + _STEADY_EPOCHS.value,
        repeats=_REPEATS.value,
    )
    results = {"pipeline_cold": cold, "pipeline_steady": steady}
    if layer is not None:
        batch = tf.random.uniform((batch_size, *config.input.image_size, 3), 0, 255)
        seed = tf.constant([1, 2], tf.int64)
        results["augment_kernel"] = throughput.time_batches(
            lambda: layer(batch, training=True, seed=seed).numpy(),
            batch_size,
            batches=20,
            repeats=_REPEATS.value,
        )
    if baseline:
        iterator = idg_train_iterator(config)
        results["idg_pipeline"] = throughput.time_batches(
            lambda: next(iterator), batch_size, batches=len(iterator), repeats=_REPEATS.value
        )
    return results


def bench_step(config: training.TrainConfig, num_classes: int) -> dict:
    """The train step alone, on in-memory tensors."""
    model = training.make_model(config, num_classes)
    rate = throughput.time_train_step(
        model,
        config.input.image_size,
        num_classes,
        batch_size=config.input.batch_size,
        steps=_STEPS.value,
        repeats=_REPEATS.value,
    )
    return {"step": rate}


def bench_e2e(config: training.TrainConfig, data: training.Data, baseline: bool) -> dict:
    """`fit` on the real pipeline (and on the seed's), after one warm-up epoch."""
    num_classes = len(data.train.class_names)
    timing = dict(
        epochs=_E2E_EPOCHS.value, batch_size=config.input.batch_size, window=_WINDOW.value
    )
    train_ds, _ = training.make_datasets(config, data)
    results = {
        "e2e": throughput.time_fit(
            training.make_model(config, num_classes), train_ds, shuffle=False, **timing
        )
    }
    if baseline:
        results["idg_e2e"] = throughput.time_fit(
            training.make_model(config, num_classes), idg_train_iterator(config), **timing
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


def report(results: dict[str, throughput.Rate], header: dict[str, Any]) -> str:
    lines = [f"{key}: {value}" for key, value in header.items()]
    lines += [f"{name:>16}: {rate}" for name, rate in results.items()]
    lines += [f"{k:>34}: {v:.3f}" for k, v in flatten(results).items() if "_vs_" in k]
    return "\n".join(lines)


def run_benchmarks(mode: str, config: training.TrainConfig, baseline: bool) -> dict:
    """Runs the measurements `mode` asks for, logging each figure as it is done."""
    data = training.load_data(config)
    stages = [
        ("pipeline", lambda: bench_pipeline(config, data, baseline)),
        ("step", lambda: bench_step(config, len(data.train.class_names))),
        ("e2e", lambda: bench_e2e(config, data, baseline)),
    ]
    results: dict[str, throughput.Rate] = {}
    for name, measure in stages:
        if mode in (name, "all"):
            logging.info("measuring %s ...", name)
            for key, rate in measure().items():
                logging.info("%s: %s", key, rate)
                results[key] = rate
    return results


def main(argv: Sequence[str]) -> None:
    cli.reject_positional(argv)
    data_dir = resolve_data_dir()
    if _MODE.value == "parity":
        seeds = [common_flags.SEED.value + i for i in range(_REPEATS.value)]
        runs = parity.train_side_by_side(
            data_dir,
            seeds,
            epochs=common_flags.EPOCHS.value,
            image_size=common_flags.IMAGE_SIZE.value,
            batch_size=common_flags.BATCH_SIZE.value,
        )
        print(parity.format_table(runs))
        return
    config = train.config_from_flags(data_dir)
    training.check_config(config)
    results = run_benchmarks(_MODE.value, config, _BASELINE.value == "idg")
    header = {
        **throughput.environment(),
        "data_dir": data_dir,
        "mode": _MODE.value,
        "image_size": config.input.image_size[0],
        "batch_size": config.input.batch_size,
        "augment_on": training.resolve_augment_on(config.augment_on),
        "mixed_precision": config.precision,
        "jit_compile": config.jit_compile,
        "cache": config.input.cache,
        "peak_rss_mb": round(throughput.peak_rss_mb(), 1),
    }
    print(report(results, header))
    if common_flags.JSON.value:
        artifacts.write_json(common_flags.JSON.value, {**header, **flatten(results)})


def run() -> None:
    """Console-script entry point (`rps-benchmark`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
