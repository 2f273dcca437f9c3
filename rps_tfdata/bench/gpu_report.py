"""One command on the first GPU: the GPU path measured beside what BUILD.md predicts.

`check` runs, in a few minutes on one GPU: the agreement of the augmentation in the
pipeline (host) and inside an XLA-compiled function on the device, on real images; a
short training in float32, mixed_bfloat16 and mixed_float16; images/s of the pipeline
alone, the step alone, the training loop per step and per `--steps_per_loop` call; and
the GPU's name and peak memory. Each rate stands beside the projection for one H100 at
150 px (`docs/measurements/2026-11-throughput.md`). Without a GPU the same checks run on
the CPU at a reduced size, and nothing is compared.
"""

import os
import time
from typing import Any, Optional

import numpy as np
import tensorflow as tf

from rps_tfdata.bench import measurements
from rps_tfdata.pipeline import passes
from rps_tfdata.trainer import config as config_lib
from rps_tfdata.trainer import datasets, inputs, training

# One H100 at 150 px, device augmentation (the projection in 2026-11-throughput.md):
# the step at 10-20% of bf16 peak; the host slicing cached uint8 at about 17,700 images/s
# per core, so a GPU's share of a server's cores (8-14) supplies 140-250 k.
PREDICTED = {
    "pipeline_steady": "140,000-250,000",
    "step": "38,000-75,000",
    "e2e": "38,000-75,000, less per-step waits",
    "e2e_loop": "38,000-75,000",
}
PRECISIONS = config_lib.CHOICES["mixed_precision"]
# The tests' bound on host vs device augmentation (0..255 scale).
AGREEMENT = 0.02


def gpu_name() -> Optional[str]:
    """The first GPU's name, or None without one."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def devices() -> str:
    """The devices TensorFlow sees, for the line that says no GPU is among them."""
    return ", ".join(d.name for d in tf.config.list_physical_devices())


def augmentation_agreement(subject: measurements.Subject, data: datasets.Data) -> float:
    """The largest difference (0..255) between one batch of real images augmented by the
    tf.data pipeline (on the host) and the same images and seeds augmented in an
    XLA-compiled function on the first device, by the plan's one layer."""
    layer, seed = subject.plan.augmentation, subject.config.seed

    def first_batch(augmentation):
        batches = inputs.training_batches(data.train, seed=seed, augmentation=augmentation)
        return next(iter(batches))

    on_host, _, seeds = first_batch(layer)
    plain, _, _ = first_batch(None)  # the same epoch and order: the same images and seeds
    with tf.device("/GPU:0" if gpu_name() else "/CPU:0"):
        on_device = tf.function(
            lambda images, seeds: layer(tf.cast(images, tf.float32), training=True, seed=seeds),
            jit_compile=True,
        )(plain, seeds)
    held = seeds.numpy()[:, 1] != passes.NO_IMAGE
    return float(np.abs(on_host.numpy() - on_device.numpy())[held].max())


def short_trainings(config: config_lib.TrainConfig, folder: str) -> dict[str, dict[str, float]]:
    """Validation accuracy and seconds of a short run in each precision."""
    results = {}
    for precision in PRECISIONS:
        start = time.perf_counter()
        run = config._replace(mixed_precision=precision, model_dir=os.path.join(folder, precision))
        metrics = training.train_and_evaluate(run)
        results[precision] = {
            "val_accuracy": round(metrics["val_accuracy"], 4),
            "seconds": round(time.perf_counter() - start, 1),
        }
    return results


def check(
    subject: measurements.Subject, folder: str, settings: measurements.Settings
) -> dict[str, Any]:
    """Every check of the module doc on the subject's data; the report as one dict."""
    config = subject.config
    data = subject.source.load(subject.plan.worker, subject.plan.input)
    report: dict[str, Any] = {"gpu": gpu_name(), "image_size": config.image_size}
    agreement = augmentation_agreement(subject, data)
    report["augmentation_max_difference"] = round(agreement, 5)
    report["augmentation_agrees"] = agreement < AGREEMENT
    report["trainings"] = short_trainings(config, folder)
    # Windows of full batches inside an epoch (its first and partial last left out).
    window = max(1, min(settings.window, inputs.batch_count(data.train) - 2))
    rates = measurements.run_benchmarks(
        "all", subject, baseline=False, settings=settings._replace(window=window)
    )
    report["images_per_sec"] = {name: round(rate.median, 1) for name, rate in rates.items()}
    report["steps_per_loop"] = config.steps_per_loop
    if report["gpu"]:
        report["gpu_peak_memory_mb"] = round(
            tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1
        )
    return report


def table(report: dict[str, Any]) -> str:
    """The report as lines: each rate beside its prediction (on a GPU only)."""
    compared = report["gpu"] is not None
    lines = [
        f"device: {report['gpu'] or 'CPU (no GPU visible to TensorFlow)'}; images of "
        f"{report['image_size']} px; --steps_per_loop={report['steps_per_loop']}",
        f"augmentation host vs device: max difference {report['augmentation_max_difference']} "
        f"on 0..255 ({'agrees' if report['augmentation_agrees'] else 'DIFFERS'}; bound "
        f"{AGREEMENT})",
    ]
    for precision, figures in report["trainings"].items():
        lines.append(
            f"training {precision:>15}: val_accuracy {figures['val_accuracy']:.4f} "
            f"in {figures['seconds']} s"
        )
    lines.append(f"{'images/s':>24} {'measured':>12}  predicted for one H100 at 150 px")
    for name, rate in report["images_per_sec"].items():
        predicted = PREDICTED.get(name, "") if compared else "(no GPU: not compared)"
        lines.append(f"{name:>24} {rate:>12,.1f}  {predicted}")
    if "gpu_peak_memory_mb" in report:
        lines.append(f"GPU peak memory: {report['gpu_peak_memory_mb']} MiB")
    return "\n".join(lines)
