"""Benchmarks this package against the seed's ImageDataGenerator pipeline, same files, same run.

    python -m rps_tfdata.benchmark --flagfile=flags/bench.flags [--data_dir=PATH] [--json=FILE]

`--mode=pipeline|step|e2e|all|parity|memory|service|serving|fit|first_batch` (see
`rps_tfdata.bench.measurements`); `--baseline=idg` adds the seed's pipeline. `--mode=service`
starts `--data_service_workers` local workers, or with `--data_service=grpc://HOST:PORT`
reads through a running service's own workers. Without `--data_dir` it writes synthetic
data sized like the real set (`--per_class=840 --size=300`: 2,520 PNGs of about 80 KB)
once, under `--download_dir`. The training flags apply, with the same checks as `train`,
so a flagfile describes a benchmark exactly. Needs the `[bench]` extra (pillow, scipy).
"""

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
    "mode",
    "baseline",
    "repeats",
    "steady_epochs",
    "e2e_epochs",
    "steps",
    "window",
    "data_service_workers",
    "data_service",
    "data_service_compression",
    *flag_defs.TRAINING,
)


def resolve_data_dir() -> str:
    """--data_dir, else the synthetic set (written once under --download_dir)."""
    if _F.data_dir.value:
        return _F.data_dir.value
    return synthetic_hands.shared_dataset(_F.download_dir.value, _F.per_class.value, _F.size.value)


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.bench import measurements, parity  # here: IDG needs PIL, checked in run()

    command.reject_positional(argv)
    scratch = tempfile.mkdtemp(prefix="rps_benchmark_")  # --image_cache=disk files
    try:
        config = configs.training_config(_F, data_dir=resolve_data_dir(), model_dir=scratch)
        if _F.mode.value == "parity":
            print(parity.format_table(parity.train_side_by_side(config, repeats=_F.repeats.value)))
            return
        settings = measurements.Settings(
            _F.repeats.value,
            _F.steady_epochs.value,
            _F.e2e_epochs.value,
            _F.steps.value,
            _F.window.value,
        )
        head, figures = measurements.measure(
            _F.mode.value,
            measurements.subject_of(config),
            settings,
            baseline=_F.baseline.value == "idg",
            service_workers=_F.data_service_workers.value,
        )
        print(measurements.report(figures, head))
        if _F.json.value:
            atomic.write_json(_F.json.value, {**head, **measurements.flatten(figures)})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run() -> None:
    """Console-script entry point (`rps-benchmark`)."""
    command.require_bench_extras("rps-benchmark")
    command.run(main)


if __name__ == "__main__":
    run()
