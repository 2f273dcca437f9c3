"""Shared test set-up: absl flags marked parsed, two logical CPU devices, and small image
folders built on demand."""

import os

import pytest
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Two-replica strategies (`tests/test_loop.py`) run in the test process on these; logical
# devices can only be set before TensorFlow's runtime starts, so here, before any test.
LOGICAL_CPUS = 2


def pytest_configure(config):
    # Entry points read flag values; under pytest nobody calls app.run to parse them.
    flags.FLAGS.mark_as_parsed()
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * LOGICAL_CPUS
    )


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> str:
    """A tiny RPS-format folder: 10 synthetic 64x64 hands per class."""
    from rps_tfdata.core import synthetic

    out = str(tmp_path_factory.mktemp("synthetic"))
    synthetic.write_dataset(out, 10, size=64, seed=1)
    return out
