"""Evaluates a finished run on a folder of images.

    python -m rps_tfdata.evaluate --model_dir=runs/rps --data_dir=PATH [--json=FILE]

Prints accuracy, loss and a confusion matrix with class names.
"""

from typing import Sequence

from absl import app

from rps_tfdata import artifacts, cli, common_flags, evaluation


def main(argv: Sequence[str]) -> None:
    cli.reject_positional(argv)
    if not common_flags.DATA_DIR.value:
        raise app.UsageError("--data_dir is required: the class-per-folder images to evaluate on")
    run = artifacts.load_run(common_flags.MODEL_DIR.value, batch_size=common_flags.BATCH_SIZE.value)
    result = evaluation.evaluate_folder(run, common_flags.DATA_DIR.value)
    print(evaluation.format_report(result))
    if common_flags.JSON.value:
        artifacts.write_json(common_flags.JSON.value, result)


def run() -> None:
    """Console-script entry point (`rps-evaluate`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
