"""rps_tfdata: the Rock-Paper-Scissors CNN trained through a tf.data-native pipeline.

The package keeps the seed study note's dataset split, ImageDataGenerator augmentation
semantics and CNN, and rebuilds the input side as a prefetching `tf.data` pipeline.
- `rps_tfdata.infra`, `rps_tfdata.pipeline`, `rps_tfdata.image`, `rps_tfdata.trainer`,
  `rps_tfdata.serving`: library modules that never read flags and change nothing
  process-wide when imported;
- `rps_tfdata.bench`: the measuring tools (measurements, parity run, parity grid, the
  GPU report, the seed's ImageDataGenerator reference);
- `rps_tfdata.cli`: flag definitions and how a command starts and reports errors;
- `train`, `evaluate`, `predict`, `export`, `synthetic`, `data_service`, `benchmark`,
  `preview`, `gpu_check`: thin entry points, `python -m rps_tfdata.NAME` (or `rps-NAME`).
"""

__version__ = "0.1.0"
