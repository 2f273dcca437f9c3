"""Measurements that compare this package with the seed's ImageDataGenerator pipeline.

    python -m rps_tfdata.benchmark --mode=parity --data_dir=PATH --epochs=10 \
        --image_size=64 --repeats=2

`--mode=parity` trains the seed's pipeline and ours on the same files with the same seed
and settings (validation augmented, as the seed does), `--repeats` times with seeds
`--seed`, `--seed`+1, ..., and prints both learning curves and the wall time per epoch in
one Markdown table. It needs the test extras (pillow, scipy) for ImageDataGenerator.
"""

from typing import Sequence

from absl import app, flags

from rps_tfdata import cli, common_flags, parity

_MODE = flags.DEFINE_enum("mode", "parity", ["parity"], "What to measure.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 2, "Runs per pipeline (different seeds), to see run-to-run noise.", lower_bound=1
)


def main(argv: Sequence[str]) -> None:
    cli.reject_positional(argv)
    if not common_flags.DATA_DIR.value:
        raise app.UsageError("--data_dir is required: the class-per-folder images to train on")
    seeds = [common_flags.SEED.value + i for i in range(_REPEATS.value)]
    runs = parity.train_side_by_side(
        common_flags.DATA_DIR.value,
        seeds,
        epochs=common_flags.EPOCHS.value,
        image_size=common_flags.IMAGE_SIZE.value,
        batch_size=common_flags.BATCH_SIZE.value,
    )
    print(parity.format_table(runs))


def run() -> None:
    """Console-script entry point (`rps-benchmark`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
