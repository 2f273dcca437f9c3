"""Exports a finished run as a SavedModel that takes encoded images.

    python -m rps_tfdata.export --model_dir=runs/rps [--out=DIR]
        [--tflite [--tflite_quantize=none|float16|dynamic]]

Default DIR: MODEL_DIR/export/1 (TF Serving's version layout), which training also
writes at the end of a run. See `rps_tfdata.serving.saved_model` for the signatures. With
`--tflite`, also a TensorFlow Lite model in MODEL_DIR/tflite/ (`rps_tfdata.serving.tflite`).
"""

import os
from typing import Sequence

from rps_tfdata.cli import command, flag_defs
from rps_tfdata.infra import fs

_F = flag_defs.define("model_dir", "out", "tflite", "tflite_quantize")


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.serving import saved_model, tflite  # TensorFlow starts here
    from rps_tfdata.trainer import artifacts

    command.reject_positional(argv)
    finished = artifacts.load_run(_F.model_dir.value)
    out = _F.out.value or saved_model.default_dir(_F.model_dir.value)
    saved_model.write(finished, out)
    print(
        f"exported {out} (signatures serving_default: images, a batch of encoded files; "
        "images_uint8: a batch of decoded pixels at the training size)"
    )
    if _F.tflite.value:
        quantize = _F.tflite_quantize.value
        path = tflite.write(finished, tflite.default_dir(_F.model_dir.value), quantize)
        size = None if fs.is_remote(path) else os.path.getsize(fs.local(path))
        print(
            f"exported {path} (--tflite_quantize={quantize}; input uint8 pixels "
            f"[N, {finished.options.image_size[0]}, {finished.options.image_size[1]}, 3], "
            "resized by the caller; labels.txt and input.json beside it)"
            + (f", {size / 2**20:.2f} MB" if size else "")
        )


def run() -> None:
    """Console-script entry point (`rps-export`)."""
    command.run(main)


if __name__ == "__main__":
    run()
