"""Evaluates a finished run on a folder of images.

    python -m rps_tfdata.evaluate --model_dir=runs/rps --data_dir=PATH [--json=FILE]

Prints accuracy, loss and a confusion matrix with class names.
"""

import json
from typing import Sequence

from absl import app, flags

from rps_tfdata import artifacts, cli, common_flags, evaluation

_JSON = flags.DEFINE_string("json", None, "Also write the results as JSON to this file.")


def main(argv: Sequence[str]) -> None:
    cli.reject_positional(argv)
    if not common_flags.DATA_DIR.value:
        raise app.UsageError("--data_dir is required: the class-per-folder images to evaluate on")
    run = artifacts.load_run(common_flags.MODEL_DIR.value, batch_size=common_flags.BATCH_SIZE.value)
    result = evaluation.evaluate_folder(run, common_flags.DATA_DIR.value)
    print(evaluation.format_report(result))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


def run() -> None:
    """Console-script entry point (`rps-evaluate`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
