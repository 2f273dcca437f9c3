"""Shared test set-up: absl flags marked parsed, two logical CPU devices, the xdist groups
of the fast tier, and the fixtures more than one test file uses (small image folders, a
finished run, the resume tests' job), built once per test process on demand."""

import os
import shutil

import pytest
from absl import flags

from .helpers import finish_resume_job, finished_config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Two-replica strategies (`tests/test_loop.py`) run in the test process on these; logical
# devices can only be set before TensorFlow's runtime starts, so here, before any test.
LOGICAL_CPUS = 2
# Test files that read the session's finished run: one xdist worker takes them all, so
# the run is trained once (`./run.sh test --fast` distributes by these groups).
FINISHED_RUN_READERS = {
    "test_training.py",
    "test_export.py",
    "test_checkpoints.py",
    "test_plots.py",
    "test_tflite.py",
}


def pytest_configure(config):
    # Entry points read flag values; under pytest nobody calls app.run to parse them.
    flags.FLAGS.mark_as_parsed()
    config.addinivalue_line("markers", "xdist_group(name): tests an xdist worker runs together")
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * LOGICAL_CPUS
    )


def pytest_collection_modifyitems(items):
    """Every test in the xdist group of its file (as `--dist loadfile` would), but the
    files that share the finished run in one group."""
    for item in items:
        name = item.path.name
        group = "finished_run" if name in FINISHED_RUN_READERS else name
        item.add_marker(pytest.mark.xdist_group(group))


def hands(tmp_path_factory, name: str, per_class: int, *, size: int, seed: int) -> str:
    """A new folder of synthetic hands in the RPS layout."""
    from rps_tfdata.trainer import synthetic_hands

    out = str(tmp_path_factory.mktemp(name))
    synthetic_hands.write_dataset(out, per_class, size=size, seed=seed)
    return out


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> str:
    """A tiny RPS-format folder: 10 synthetic 64x64 hands per class (24 train, 6 validation)."""
    return hands(tmp_path_factory, "synthetic", 10, size=64, seed=1)


@pytest.fixture(scope="session")
def held_out_dir(tmp_path_factory) -> str:
    """A tiny test set of the same classes: 3 hands per class."""
    return hands(tmp_path_factory, "test_set", 3, size=64, seed=2)


@pytest.fixture(scope="session")
def finished_run(synthetic_dir, held_out_dir, tmp_path_factory):
    """A small run trained to its end (two epochs, a test set): (model_dir, metrics).
    Tests read it and never change it; `copy_of_finished_run` is theirs to change."""
    from rps_tfdata.trainer import training

    model_dir = str(tmp_path_factory.mktemp("finished_run"))
    config = finished_config(synthetic_dir, held_out_dir, model_dir)
    return model_dir, training.train_and_evaluate(config)


@pytest.fixture()
def copy_of_finished_run(finished_run, tmp_path) -> str:
    """A private copy of the finished run's folder."""
    copy = str(tmp_path / "copy_of_finished_run")
    shutil.copytree(finished_run[0], copy)
    return copy


@pytest.fixture(scope="session")
def resume_data(tmp_path_factory) -> str:
    """The resume tests' data: 20 synthetic hands per class at 150 px (48 training images)."""
    return hands(tmp_path_factory, "resume_data", 20, size=150, seed=3)


@pytest.fixture(scope="session")
def resume_reference(resume_data, tmp_path_factory) -> str:
    """The resume tests' job, run once to its end uninterrupted: its model folder."""
    model_dir = str(tmp_path_factory.mktemp("resume_reference") / "run")
    finish_resume_job(resume_data, model_dir)
    return model_dir
