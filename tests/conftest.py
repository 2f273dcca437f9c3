"""Shared test set-up: absl flags marked parsed, and small image folders built on demand."""

import os

import pytest
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    # Entry points read flag values; under pytest nobody calls app.run to parse them.
    flags.FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> str:
    """A tiny RPS-format folder: 10 synthetic 64x64 hands per class."""
    from rps_tfdata.core import synthetic

    out = str(tmp_path_factory.mktemp("synthetic"))
    synthetic.write_dataset(out, 10, size=64, seed=1)
    return out
