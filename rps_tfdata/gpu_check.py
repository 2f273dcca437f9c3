"""One command on the first GPU: the GPU path measured beside what BUILD.md predicts.

    ./run.sh gpu-check [--data_dir=PATH] [--json=FILE]     (python -m rps_tfdata.gpu_check)

Prints a table and, as its last line, the same report as JSON (`rps_tfdata.bench.gpu_check`
says what it measures). Without `--data_dir` it writes a small synthetic set once under
`--download_dir`. On a machine without a GPU it says so in one line, runs the same checks
on the CPU at 46 px on fewer images, and exits 0. Needs the `[bench]` extra.
"""

import json
import shutil
import tempfile
from typing import Sequence

import tensorflow as tf

from rps_tfdata.cli import app, configs, flag_defs
from rps_tfdata.core import files, synthetic

_F = flag_defs.define(
    "data_dir",
    "download_dir",
    "per_class",
    "size",
    "json",
    "image_size",
    "batch_size",
    "epochs",
    "steps_per_loop",
    "repeats",
)
# Defaults of this command where the shared flags' do not fit it (a flag given wins):
# a set written in under a minute, a short training, and the loop measured at 16 steps.
_DEFAULTS = {"per_class": 300, "epochs": 5, "steps_per_loop": 16}
# What the CPU runs instead: a check of the code path, not of speed.
_ON_CPU = {"image_size": 46, "per_class": 80, "size": 64, "epochs": 1, "repeats": 1}


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.bench import benchmarks, gpu_check  # here: needs the [bench] extra

    app.reject_positional(argv)
    names = {*_DEFAULTS, *_ON_CPU}
    values = {name: getattr(_F, name).value for name in names}
    values.update({k: v for k, v in _DEFAULTS.items() if not getattr(_F, k).present})
    if not tf.config.list_physical_devices("GPU"):
        devices = ", ".join(d.name for d in tf.config.list_physical_devices())
        print(
            f"gpu-check: no GPU visible to TensorFlow ({devices}): the same checks on the "
            f"CPU at {_ON_CPU['image_size']} px, nothing compared with the GPU projection"
        )
        values.update({k: v for k, v in _ON_CPU.items() if not getattr(_F, k).present})
    data_dir = _F.data_dir.value or synthetic.shared_dataset(
        _F.download_dir.value, values["per_class"], values["size"]
    )
    scratch = tempfile.mkdtemp(prefix="rps_gpu_check_")
    try:
        config = configs.training_config(
            _F,
            data_dir=data_dir,
            model_dir=scratch,
            image_size=values["image_size"],
            epochs=values["epochs"],
            steps_per_loop=values["steps_per_loop"],
            augment_on="device",
        )
        settings = benchmarks.Settings(repeats=values["repeats"], steady_epochs=2, window=3)
        report = gpu_check.check(config, scratch, settings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(gpu_check.table(report))
    print(json.dumps(report, sort_keys=True))
    if _F.json.value:
        files.write_json(_F.json.value, report)


def run() -> None:
    """Console-script entry point (`rps-gpu-check`)."""
    app.require_bench_extras("rps-gpu-check")
    app.run(main)


if __name__ == "__main__":
    run()
