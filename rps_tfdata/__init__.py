"""rps_tfdata: the Rock-Paper-Scissors CNN trained through a tf.data-native pipeline.

The package keeps the seed study note's dataset split, ImageDataGenerator augmentation
semantics and CNN, and rebuilds the input side as a prefetching `tf.data` pipeline.
Modules, one job each: `sources` (where images come from), `index` (file listing and
split), `augment` (the IDG-equivalent Keras layer), `pipeline` (the datasets), `model`
(the CNN), `training` (fit and artifacts); `train`, `evaluate`, `predict` and
`synthetic` are the command-line entry points.
"""

import os

# TensorFlow's C++ INFO lines (CPU features, "no CUDA drivers") drown the progress output
# of every command; a value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

__version__ = "0.1.0"
