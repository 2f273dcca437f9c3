"""Draws the parity picture: originals, our augmentation, IDG's with the same parameters.

    python -m rps_tfdata.preview --data_dir=PATH --out=preview.png [--num_images=6]

Needs the `[bench]` extra (pillow, scipy): it runs Keras' ImageDataGenerator.
"""

from typing import Sequence

from absl import flags

from rps_tfdata.cli import command, flag_defs
from rps_tfdata.infra import atomic

_F = flag_defs.define("data_dir", "out", "num_images", "image_size", "seed")


def main(argv: Sequence[str]) -> None:
    import tensorflow as tf  # here: TensorFlow starts with the command

    from rps_tfdata.bench import parity_grid  # here: it imports PIL, checked for in run()

    command.reject_positional(argv)
    grid = parity_grid.make_grid(
        _F.data_dir.value,
        num_images=_F.num_images.value,
        image_size=_F.image_size.value,
        seed=_F.seed.value,
    )
    with atomic.writing(_F.out.value) as temporary:
        tf.io.write_file(temporary, tf.io.encode_png(grid))
    print(f"wrote {_F.out.value} ({grid.shape[1]}x{grid.shape[0]})")


def run() -> None:
    """Console-script entry point (`rps-preview`)."""
    flags.mark_flag_as_required("data_dir")
    flags.mark_flag_as_required("out")
    command.require_bench_extras("rps-preview")
    command.run(main)


if __name__ == "__main__":
    run()
