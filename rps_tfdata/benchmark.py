"""Benchmarks this package against the seed's ImageDataGenerator pipeline, same files, same run.

    python -m rps_tfdata.benchmark --flagfile=flags/bench.flags [--data_dir=PATH] [--json=FILE]

`--mode=pipeline|step|e2e|all|parity|memory|service|serving` (see
`rps_tfdata.bench.benchmarks`); `--baseline=idg` adds the seed's pipeline. `--mode=service`
starts `--data_service_workers` local workers, or with `--data_service=grpc://HOST:PORT`
reads through a running service's own workers. Without `--data_dir` it writes synthetic
data sized like the real set (`--per_class=840 --size=300`: 2,520 PNGs of about 80 KB) once, under
`--download_dir`. The training flags apply, with the same checks as `train`, so a
flagfile describes a benchmark exactly. Needs the `[bench]` extra (pillow, scipy).
"""

import shutil
import tempfile
from typing import Sequence

from rps_tfdata.cli import app, configs, flag_defs
from rps_tfdata.core import files, synthetic

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
    return synthetic.shared_dataset(_F.download_dir.value, _F.per_class.value, _F.size.value)


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.bench import benchmarks, parity  # here: IDG needs PIL, checked in run()

    app.reject_positional(argv)
    scratch = tempfile.mkdtemp(prefix="rps_benchmark_")  # --image_cache=disk files
    try:
        config = configs.training_config(_F, data_dir=resolve_data_dir(), model_dir=scratch)
        settings = benchmarks.Settings(
            _F.repeats.value,
            _F.steady_epochs.value,
            _F.e2e_epochs.value,
            _F.steps.value,
            _F.window.value,
        )
        mode = _F.mode.value
        if mode == "parity":
            print(parity.format_table(parity.train_side_by_side(config, repeats=_F.repeats.value)))
        elif mode == "memory":
            figures = benchmarks.measure_memory(config, _F.e2e_epochs.value)
            print("\n".join(f"{key}: {value}" for key, value in figures.items()))
        else:
            traffic = {}
            if mode == "service":
                results, traffic = benchmarks.measure_service(
                    config, _F.data_service_workers.value, settings
                )
            elif mode == "serving":
                results = benchmarks.measure_serving(config, settings)
            else:
                baseline = _F.baseline.value == "idg"
                results = benchmarks.run_benchmarks(
                    mode, config, baseline=baseline, settings=settings
                )
            head = {**benchmarks.header(config, mode), **traffic}
            print(benchmarks.report(results, head))
            if _F.json.value:
                files.write_json(_F.json.value, {**head, **benchmarks.flatten(results)})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run() -> None:
    """Console-script entry point (`rps-benchmark`)."""
    app.require_bench_extras("rps-benchmark")
    app.run(main)


if __name__ == "__main__":
    run()
