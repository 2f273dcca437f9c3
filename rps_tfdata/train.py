"""Trains the seed's RPS CNN: `python -m rps_tfdata.train --epochs=25`.

A thin entry point: it reads the flags (one per `TrainConfig` field, and `--overwrite`)
and calls `rps_tfdata.trainer.training.train_and_evaluate`. Named jobs live in
`flags/*.flags` (`--flagfile=flags/seed.flags`); the flags of every run are saved in its
model folder as `flags.txt`, itself a flagfile that repeats the run.
"""

from typing import Sequence

from absl import logging

from rps_tfdata.cli import command, configs, flag_defs
from rps_tfdata.trainer import config as config_lib

_F = flag_defs.define(*config_lib.TrainConfig._fields, "overwrite")


def make_config() -> config_lib.TrainConfig:
    """The run's configuration from the flags."""
    return configs.training_config(_F)


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.trainer import training  # here: TensorFlow starts with the command

    command.reject_positional(argv)
    config = make_config()
    settings = [h for h in flag_defs.holders(_F) if h.name != "overwrite"]
    metrics = training.train_and_evaluate(
        config, overwrite=_F.overwrite.value, flags_text=command.serialize_flags(settings)
    )
    if isinstance(metrics, training.WorkerResult):
        print(
            f"worker trained {metrics.epochs_run} epochs (weights sha256 "
            f"{metrics.final_weights_sha256[:16]}...); the chief writes the artifacts "
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
    command.run(main)


if __name__ == "__main__":
    run()
