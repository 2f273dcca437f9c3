"""rps_tfdata: the Rock-Paper-Scissors CNN trained through a tf.data-native pipeline.

The package keeps the seed study note's dataset split, ImageDataGenerator augmentation
semantics and CNN, and rebuilds the input side as a prefetching `tf.data` pipeline.
- `rps_tfdata.core`: the product path (sources, index, images, augment, pipeline, model,
  training, evaluation, artifacts), library modules that never read flags;
- `rps_tfdata.bench`: the measuring tools (benchmarks, parity run, preview, the seed's
  ImageDataGenerator reference);
- `rps_tfdata.cli`: flag definitions and error reporting shared by the entry points;
- `train`, `evaluate`, `predict`, `synthetic`, `data_service`, `benchmark`, `preview`:
  thin entry points, `python -m rps_tfdata.NAME`.
"""

import os

from absl import logging

# TensorFlow's C++ INFO lines (CPU features, "no CUDA drivers") drown the progress output
# of every command; a value the user set wins. Its checkpoint and SavedModel writers log
# INFO lines per save through absl's logger, which is ours too: drop just those.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
_TENSORFLOW_CHATTER = ("Sharding callback duration", "Assets written to", "Writing fingerprint to")
logging.get_absl_logger().addFilter(
    lambda record: not record.getMessage().startswith(_TENSORFLOW_CHATTER)
)

__version__ = "0.1.0"
