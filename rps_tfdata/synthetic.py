"""Writes an RPS-format dataset of synthetic hands.

    python -m rps_tfdata.synthetic --out=/tmp/rps_synth --per_class=840 --size=300

Class folders `paper/ rock/ scissors/` of PNGs named like the real files; see
`rps_tfdata.trainer.synthetic_hands` for what the images hold.
"""

import os
from typing import Sequence

from absl import flags

from rps_tfdata.cli import command, flag_defs
from rps_tfdata.trainer import synthetic_hands

_F = flag_defs.define("out", "per_class", "size", "seed")


def main(argv: Sequence[str]) -> None:
    command.reject_positional(argv)
    out = _F.out.value
    paths = synthetic_hands.write_dataset(
        out, _F.per_class.value, size=_F.size.value, seed=_F.seed.value
    )
    mean_kib = sum(os.path.getsize(p) for p in paths) / len(paths) / 1024
    print(f"wrote {len(paths)} images, {mean_kib:.1f} KiB average, to {out}")


def run() -> None:
    """Console-script entry point (`rps-synthetic`)."""
    flags.mark_flag_as_required("out")
    command.run(main)


if __name__ == "__main__":
    run()
