"""The side-by-side learning run and the preview picture, on tiny data."""

import numpy as np
import pytest

from rps_tfdata.bench import benchmarks, parity, preview
from rps_tfdata.core import config as config_lib
from rps_tfdata.core import datasets, evaluation, plan
from rps_tfdata.core.errors import ConfigError

from .helpers import RPS28


def config_for(data_dir, **changes):
    return config_lib.TrainConfig(
        data_dir=data_dir, model_dir="", image_size=48, batch_size=8, **changes
    )


def test_side_by_side_trains_both_pipelines_and_tabulates(synthetic_dir):
    runs = parity.train_side_by_side(config_for(synthetic_dir, epochs=2, seed=3))
    assert [run.pipeline for run in runs] == list(parity.PIPELINES)
    for run in runs:
        assert all(len(run.history[key]) == 2 for key in parity.CURVE_KEYS)
        assert run.history["val_loss"][0] != run.history["val_loss"][1]  # it trained
    table = parity.format_table(runs)
    assert table.count("| seed_idg | 3 |") == 3 and table.count("| rps_tfdata | 3 |") == 3


def test_both_pipelines_start_from_the_same_weights(synthetic_dir):
    """With a zero learning rate the weights never move: the clean evaluation of each
    final model is then the evaluation of its initial weights."""
    config = config_for(synthetic_dir, epochs=1, seed=5, learning_rate=0.0)
    idg, ours = parity.train_side_by_side(config)
    assert idg.clean_val_loss == pytest.approx(ours.clean_val_loss, abs=1e-6)
    # Not a loss any model would get: another seed's initial weights evaluate otherwise.
    one_device = benchmarks.one_device_plan(config)
    data = datasets.open_source(config, one_device.input).load(one_device.worker)
    _, other = parity.start(config._replace(seed=6), one_device, 3)
    other_loss = evaluation.evaluate_prepared(other.predict, data.validation, data.class_names)[
        "loss"
    ]
    assert other_loss != pytest.approx(idg.clean_val_loss, abs=1e-6)


def test_parity_augments_validation_on_the_host_and_refuses_the_device():
    checked = parity.parity_config(config_for("d", augment_on="auto"), seed=9)
    assert (checked.augment_validation, checked.augment_on, checked.seed) == (True, "host", 9)
    with pytest.raises(ConfigError, match="--augment_validation needs --augment_on=host"):
        plan.make_plan(parity.parity_config(config_for("d", augment_on="device"), seed=9))


def test_preview_rows_show_equal_augmentations():
    size, gap, n = 64, preview._GAP, 3
    grid = preview.make_grid(RPS28, num_images=n, image_size=size, seed=1)
    assert grid.shape == (4 * size + 3 * gap, preview._LABEL_WIDTH + n * (size + gap), 3)

    def tiles(row):
        top = row * (size + gap)
        lefts = [preview._LABEL_WIDTH + gap + c * (size + gap) for c in range(n)]
        return np.stack([grid[top : top + size, x : x + size] for x in lefts]).astype(int)

    original, ours, theirs, difference = (tiles(row) for row in range(4))
    assert np.abs(ours - theirs).max() <= 1  # float rounding only
    assert np.abs(original - ours).mean() > 5  # it did augment
    assert difference.max() <= preview.DIFF_GAIN  # under 1 level everywhere, amplified
