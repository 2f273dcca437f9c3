"""The run's pictures: the learning curves and the confusion matrix, as PNG files in the
run folder and as an image in TensorBoard."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from rps_tfdata.trainer import artifacts, plots

pytest.importorskip("matplotlib", reason="needs matplotlib (the plots extra)")


def pixels_of(png: bytes) -> np.ndarray:
    return tf.io.decode_png(png, channels=3).numpy()


def test_a_finished_run_holds_its_pictures(finished_run):
    model_dir, metrics = finished_run
    for name in (artifacts.HISTORY_PLOT_FILE, artifacts.CONFUSION_PLOT_FILE):
        with open(os.path.join(model_dir, name), "rb") as f:
            image = pixels_of(f.read())
        assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 10, name
    events = glob.glob(os.path.join(model_dir, artifacts.LOGS_FOLDER, "validation", "events.*"))
    tags = {
        value.tag
        for path in events
        for event in tf.compat.v1.train.summary_iterator(path)
        for value in event.summary.value
    }
    assert "confusion_matrix" in tags


def test_the_confusion_matrix_gets_darker_with_the_count():
    """A cell of many images is drawn darker than a cell of none: compare the picture of
    a matrix with its transpose, whose dark cell sits elsewhere."""
    names = ["paper", "rock", "scissors"]
    one = pixels_of(plots.confusion_matrix([[9, 0, 0], [0, 0, 0], [0, 0, 0]], names, "t"))
    other = pixels_of(plots.confusion_matrix([[0, 0, 0], [0, 0, 0], [0, 0, 9]], names, "t"))
    assert one.shape == other.shape and (one != other).any()
    assert plots.confusion_matrix([[0, 0], [0, 0]], ["a", "b"], "empty")  # no division by 0


def test_the_curves_show_the_rate_only_where_it_changed():
    rows = [
        {"epoch": k, "loss": 1 / k, "accuracy": k / 4, "val_loss": 1 / k, "val_accuracy": 0.5}
        for k in (1, 2, 3)
    ]
    flat = pixels_of(plots.learning_curves([{**r, "learning_rate": 1e-3} for r in rows]))
    curve = pixels_of(
        plots.learning_curves([{**r, "learning_rate": 1e-3 / r["epoch"]} for r in rows])
    )
    assert curve.shape[1] > flat.shape[1]  # a third panel
