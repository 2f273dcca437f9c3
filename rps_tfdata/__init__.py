"""rps_tfdata: the Rock-Paper-Scissors CNN trained through a tf.data-native pipeline.

The package keeps the seed study note's dataset split, ImageDataGenerator augmentation
semantics and CNN, and rebuilds the input side as a prefetching `tf.data` pipeline.
- `rps_tfdata.core`: the product path (plan, datasets, reading, epochs, images, augment,
  model, loop, training, run_state, evaluation, export, ...), library modules that never
  read flags;
- `rps_tfdata.bench`: the measuring tools (benchmarks, parity run, preview, the seed's
  ImageDataGenerator reference);
- `rps_tfdata.cli`: flag definitions and error reporting shared by the entry points;
- `train`, `evaluate`, `predict`, `export`, `synthetic`, `data_service`, `benchmark`,
  `preview`: thin entry points, `python -m rps_tfdata.NAME` (or `rps-NAME`).

TensorFlow's C++ start-up lines (oneDNN, CUDA stubs, `cuInit` on machines without a GPU,
tf.data optimizer warnings) drown every command's own output, so a command starts
TensorFlow quietly, unless the user chose how much to see: `TF_CPP_MIN_LOG_LEVEL` in the
environment, or absl's `--verbosity`/`-v`, wins.
"""

import logging as std_logging
import os
import sys
import tempfile

from absl import logging

# Printed while TensorFlow's libraries load, before its logging reads any setting.
_STARTUP_CHATTER = (
    "WARNING: All log messages before absl::InitializeLog() is called",
    "port.cc:",
    "cudart_stub.cc:",
    "cpu_feature_guard.cc:",
    "To enable the following instructions:",
)
# Logged through absl's Python logger (ours too) at every checkpoint and export.
_TENSORFLOW_CHATTER = (
    "Sharding callback duration",
    "Assets written to",
    "Writing fingerprint to",
    "Function `serve` contains input name(s)",
)


def _user_chose_logging() -> bool:
    verbosity = ("--verbosity", "-v", "--v")
    return "TF_CPP_MIN_LOG_LEVEL" in os.environ or any(
        arg.split("=")[0] in verbosity for arg in sys.argv[1:]
    )


def _running_a_command() -> bool:
    """`python -m rps_tfdata.NAME` (argv[0] is "-m" while the package loads) or `rps-NAME`."""
    return sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0]).startswith("rps-")


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its load-time lines dropped; anything else it prints on the
    way (a real import problem) is passed on."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not any(marker in line for marker in _STARTUP_CHATTER):
                    sys.stderr.write(line)


if not _user_chose_logging():
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)  # its Python INFO lines
    if _running_a_command() and "tensorflow" not in sys.modules:
        _import_tensorflow_quietly()
logging.get_absl_logger().addFilter(
    lambda record: not record.getMessage().startswith(_TENSORFLOW_CHATTER)
)

__version__ = "0.1.0"
