"""Trains the seed's RPS CNN: `python -m rps_tfdata.train --epochs=25`.

A thin entry point: it reads the flags, resolves where the images come from, and calls
`rps_tfdata.core.training.train_and_evaluate`. Named jobs live in `flags/*.flags`
(`--flagfile=flags/seed.flags`); the flags of every run are saved in its model folder as
`flags.txt`, itself a flagfile that repeats the run.
"""

from typing import Sequence

from absl import app as absl_app
from absl import logging

from rps_tfdata.cli import app, configs, flag_defs
from rps_tfdata.core import config as config_lib
from rps_tfdata.core import files, sources, training

_F = flag_defs.define(
    "data_dir",
    "test_dir",
    "model_dir",
    "download_dir",
    "base_url",
    "overwrite",
    "strategy",
    "data_service",
    "data_service_timeout",
    "cpu_devices",
    "dataset",
    "tfds_data_dir",
    *flag_defs.TRAINING,
)


def make_config() -> config_lib.TrainConfig:
    """The run's configuration from the flags, fetching the official set if needed (after
    checking that the model folder can be written: a download is no use otherwise)."""
    files.check_writable(_F.model_dir.value, "--model_dir")
    train_dir, test_dir = _F.data_dir.value, _F.test_dir.value
    if _F.dataset.value == "tfds":
        if train_dir or test_dir:
            raise absl_app.UsageError("--dataset=tfds reads TFDS: drop --data_dir and --test_dir")
        train_dir = ""
    elif not train_dir:
        rps = sources.fetch_rps(_F.download_dir.value, _F.base_url.value)
        train_dir, test_dir = rps.train_dir, test_dir or rps.test_dir
    return configs.training_config(
        _F,
        train_dir=train_dir,
        test_dir=test_dir,
        model_dir=_F.model_dir.value,
        strategy=_F.strategy.value,
        data_service=_F.data_service.value or "",
        data_service_timeout=_F.data_service_timeout.value,
        cpu_devices=_F.cpu_devices.value,
        dataset=_F.dataset.value,
        tfds_data_dir=_F.tfds_data_dir.value or "",
    )


def main(argv: Sequence[str]) -> None:
    app.reject_positional(argv)
    config = make_config()
    metrics = training.train_and_evaluate(
        config,
        overwrite=_F.overwrite.value,
        flags_text=app.serialize_flags(h for h in flag_defs.holders(_F) if h.name != "overwrite"),
    )
    if "val_accuracy" not in metrics:  # a non-chief worker: the chief writes the run
        print(
            f"worker trained {metrics['epochs_run']} epochs (weights sha256 "
            f"{metrics['final_weights_sha256'][:16]}...); the chief writes the artifacts "
            f"in {config.model_dir}"
        )
        return
    summary = ", ".join(
        f"{key}={metrics[key]:.4f}"
        for key in ("val_accuracy", "val_loss", "test_accuracy", "test_loss")
        if key in metrics
    )
    logging.info("done: %s; artifacts in %s", summary, config.model_dir)
    print(summary)


def run() -> None:
    """Console-script entry point (`rps-train`)."""
    app.run(main)


if __name__ == "__main__":
    run()
