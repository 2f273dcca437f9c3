"""One command on the first GPU: the GPU path measured beside what BUILD.md predicts.

    ./run.sh gpu-check [--data_dir=PATH] [--json=FILE]
    python -m rps_tfdata.gpu_check --flagfile=flags/gpu_check.flags [...]

Its settings are a flagfile: `flags/gpu_check.flags` on a GPU, `flags/gpu_check_cpu.flags`
(the same checks at 46 px on fewer images) on a CPU; `./run.sh gpu-check` picks the one
that fits the machine. Prints a table and, as its last line, the same report as JSON
(`rps_tfdata.bench.gpu_report` says what it measures). Without `--data_dir` it writes
a small synthetic set once under `--download_dir`. On a machine without a GPU it says so
in one line, and exits 0. Needs the `[bench]` extra.
"""

import json
import shutil
import tempfile
from typing import Sequence

from rps_tfdata.cli import command, configs, flag_defs
from rps_tfdata.infra import atomic
from rps_tfdata.trainer import synthetic_hands

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


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.bench import gpu_report, measurements  # here: needs the [bench] extra

    command.reject_positional(argv)
    if not gpu_report.gpu_name():
        print(
            f"gpu-check: no GPU visible to TensorFlow ({gpu_report.devices()}): the checks "
            f"run on the CPU at {_F.image_size.value} px, nothing compared with the GPU "
            "projection"
        )
    data_dir = _F.data_dir.value or synthetic_hands.shared_dataset(
        _F.download_dir.value, _F.per_class.value, _F.size.value
    )
    scratch = tempfile.mkdtemp(prefix="rps_gpu_check_")
    try:
        config = configs.training_config(
            _F, data_dir=data_dir, model_dir=scratch, augment_on="device"
        )
        settings = measurements.Settings(repeats=_F.repeats.value, steady_epochs=2, window=3)
        report = gpu_report.check(measurements.subject_of(config), scratch, settings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(gpu_report.table(report))
    print(json.dumps(report, sort_keys=True))
    if _F.json.value:
        atomic.write_json(_F.json.value, report)


def run() -> None:
    """Console-script entry point (`rps-gpu-check`)."""
    command.require_bench_extras("rps-gpu-check")
    command.run(main)


if __name__ == "__main__":
    run()
