"""Exports a finished run as a SavedModel that takes encoded images.

    python -m rps_tfdata.export --model_dir=runs/rps [--out=DIR]

Default DIR: MODEL_DIR/export/1 (TF Serving's version layout), which training also
writes at the end of a run. See `rps_tfdata.core.export` for the signature.
"""

from typing import Sequence

from rps_tfdata.cli import app, flag_defs
from rps_tfdata.core import artifacts, export

_F = flag_defs.define("model_dir", "out")


def main(argv: Sequence[str]) -> None:
    app.reject_positional(argv)
    run = artifacts.load_run(_F.model_dir.value)
    out = _F.out.value or export.default_dir(_F.model_dir.value)
    export.export(
        run.model, run.class_names, run.options.image_size, run.options.resize_method, out
    )
    print(f"exported {out} (signature serving_default: images, a batch of encoded files)")


def run() -> None:
    """Console-script entry point (`rps-export`)."""
    app.run(main)


if __name__ == "__main__":
    run()
