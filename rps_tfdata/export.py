"""Exports a finished run as a SavedModel that takes encoded images.

    python -m rps_tfdata.export --model_dir=runs/rps [--out=DIR]

Default DIR: MODEL_DIR/export/1 (TF Serving's version layout), which training also
writes at the end of a run. See `rps_tfdata.core.saved_model` for the signature.
"""

from typing import Sequence

from rps_tfdata.cli import command, flag_defs

_F = flag_defs.define("model_dir", "out")


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.core import artifacts, saved_model  # here: TensorFlow starts with the command

    command.reject_positional(argv)
    out = _F.out.value or saved_model.default_dir(_F.model_dir.value)
    saved_model.write(artifacts.load_run(_F.model_dir.value), out)
    print(f"exported {out} (signature serving_default: images, a batch of encoded files)")


def run() -> None:
    """Console-script entry point (`rps-export`)."""
    command.run(main)


if __name__ == "__main__":
    run()
