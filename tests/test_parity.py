"""The side-by-side learning run and the preview picture, on tiny data."""

import numpy as np
import pytest

from rps_tfdata.bench import parity, parity_grid
from rps_tfdata.infra.errors import ConfigError
from rps_tfdata.trainer import plan

from .helpers import RPS28, small_run


def test_side_by_side_starts_both_pipelines_alike_trains_both_and_tabulates(
    synthetic_dir, monkeypatch
):
    """Both runs of a pair start from the same weights (the seed's), then each trains on
    its own pipeline; the table holds every epoch of both."""
    starts = []

    def start(config, plan, num_classes):
        model, steps = real_start(config, plan, num_classes)
        starts.append(model.get_weights())
        return model, steps

    real_start = parity.start
    monkeypatch.setattr(parity, "start", start)
    runs = parity.train_side_by_side(small_run(synthetic_dir, "", epochs=2, seed=3))
    assert [run.pipeline for run in runs] == list(parity.PIPELINES)
    for idg, ours in zip(*starts, strict=True):
        np.testing.assert_array_equal(idg, ours)
    other, _ = real_start(
        small_run(synthetic_dir, "", seed=4), plan.make_plan(small_run("d", "")), 3
    )
    assert any((a != b).any() for a, b in zip(starts[0], other.get_weights(), strict=True))
    for run in runs:
        assert all(len(run.history[key]) == 2 for key in parity.CURVE_KEYS)
        assert run.history["val_loss"][0] != run.history["val_loss"][1]  # it trained
    table = parity.format_table(runs)
    assert table.count("| seed_idg | 3 |") == 3 and table.count("| rps_tfdata | 3 |") == 3


def test_parity_augments_validation_on_the_host_and_refuses_the_device():
    checked = parity.parity_config(small_run("d", "", augment_on="auto"), seed=9)
    assert (checked.augment_validation, checked.augment_on, checked.seed) == (True, "host", 9)
    with pytest.raises(ConfigError, match="--augment_validation needs --augment_on=host"):
        plan.make_plan(parity.parity_config(small_run("d", "", augment_on="device"), seed=9))


def test_preview_rows_show_equal_augmentations():
    size, gap, n = 64, parity_grid._GAP, 3
    grid = parity_grid.make_grid(RPS28, num_images=n, image_size=size, seed=1)
    assert grid.shape == (4 * size + 3 * gap, parity_grid._LABEL_WIDTH + n * (size + gap), 3)

    def tiles(row):
        top = row * (size + gap)
        lefts = [parity_grid._LABEL_WIDTH + gap + c * (size + gap) for c in range(n)]
        return np.stack([grid[top : top + size, x : x + size] for x in lefts]).astype(int)

    original, ours, theirs, difference = (tiles(row) for row in range(4))
    assert np.abs(ours - theirs).max() <= 1  # float rounding only
    assert np.abs(original - ours).mean() > 5  # it did augment
    assert difference.max() <= parity_grid.DIFF_GAIN  # under 1 level everywhere, amplified
