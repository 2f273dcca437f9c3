"""Evaluates a finished run on a folder of images.

    python -m rps_tfdata.evaluate --model_dir=runs/rps --data_dir=PATH [--json=FILE]

Prints accuracy, loss and a confusion matrix with class names. Unreadable images are
named in the log and left out (`skipped_images` in the JSON), or stop the command with
`--on_bad_image=fail`.
"""

from typing import Sequence

from absl import flags

from rps_tfdata.cli import command, flag_defs
from rps_tfdata.infra import atomic

_F = flag_defs.define("model_dir", "data_dir", "batch_size", "json", "on_bad_image")


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.trainer import artifacts, evaluation  # here: TensorFlow starts with the command

    command.reject_positional(argv)
    finished = artifacts.load_run(_F.model_dir.value, batch_size=_F.batch_size.value)
    result = evaluation.evaluate_folder(
        finished, _F.data_dir.value, on_bad_image=_F.on_bad_image.value
    )
    print(evaluation.format_report(result))
    if _F.json.value:
        atomic.write_json(_F.json.value, result)


def run() -> None:
    """Console-script entry point (`rps-evaluate`)."""
    flags.mark_flag_as_required("data_dir")
    command.run(main)


if __name__ == "__main__":
    run()
