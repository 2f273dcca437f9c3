"""rps_tfdata: ImageDataGenerator's semantics as a tf.data library, and the seed's
Rock-Paper-Scissors CNN trained on it.

Where each thing lives; imports run down this list, never back:
- `train`, `evaluate`, `predict`, `export`, `synthetic`, `data_service`, `benchmark`,
  `preview`, `gpu_check`: the commands, thin absl entry points
  (`python -m rps_tfdata.NAME`, or `rps-NAME`); `rps_tfdata.cli` starts them and
  defines their flags;
- `rps_tfdata.bench`: the measuring tools (benchmarks, the parity run and picture, the
  GPU report, the seed's ImageDataGenerator as a reference);
- `rps_tfdata.trainer`: the trainer (settings, plan, data sources, the loop, a run's
  folder, its end and evaluation);
- `rps_tfdata.serving`: serving a finished run (SavedModel, TFLite, classification by
  an export); `rps_tfdata.image`: the drop-in for Keras' `ImageDataGenerator`, the
  public face of the library;
- `rps_tfdata.pipeline`: the library, IDG's semantics (reading, transforms, the pass
  builder), which both the drop-in and the trainer stand on;
- `rps_tfdata.infra`: errors a user can fix, paths anywhere, atomic writes, memory.
Every module below the commands takes plain arguments, never reads flags, and changes
nothing process-wide when imported.
"""

__version__ = "0.1.0"
