"""The side-by-side learning run and the preview picture, on tiny data."""

import numpy as np

from rps_tfdata import parity, preview

from .helpers import SHARED_RPS28


def test_side_by_side_trains_both_pipelines_and_tabulates(synthetic_dir):
    runs = parity.train_side_by_side(synthetic_dir, [3], epochs=2, image_size=48, batch_size=8)
    assert [run.pipeline for run in runs] == list(parity.PIPELINES)
    for run in runs:
        assert all(len(run.history[key]) == 2 for key in parity.CURVE_KEYS)
        assert 0 <= run.clean_val_accuracy <= 1
    table = parity.format_table(runs)
    assert table.count("| seed_idg | 3 |") == 3 and table.count("| rps_tfdata | 3 |") == 3


def test_both_pipelines_start_from_the_same_weights(synthetic_dir):
    """Same seed, same initial model: the first batch's loss differs only by the data."""
    runs = parity.train_side_by_side(synthetic_dir, [5], epochs=1, image_size=48, batch_size=8)
    losses = [run.history["loss"][0] for run in runs]
    assert abs(losses[0] - losses[1]) < 0.5


def test_preview_rows_show_equal_augmentations():
    size, gap, n = 64, preview._GAP, 3
    grid = preview.make_grid(SHARED_RPS28, num_images=n, image_size=size, seed=1)
    assert grid.shape == (4 * size + 3 * gap, preview._LABEL_WIDTH + n * (size + gap), 3)

    def tiles(row):
        top = row * (size + gap)
        lefts = [preview._LABEL_WIDTH + gap + c * (size + gap) for c in range(n)]
        return np.stack([grid[top : top + size, x : x + size] for x in lefts]).astype(int)

    original, ours, theirs, difference = (tiles(row) for row in range(4))
    assert np.abs(ours - theirs).max() <= 1  # float rounding only
    assert np.abs(original - ours).mean() > 5  # it did augment
    assert difference.max() <= preview.DIFF_GAIN  # under 1 level everywhere, amplified
