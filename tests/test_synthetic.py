"""The synthetic RPS-format dataset writer."""

import os

import numpy as np
import tensorflow as tf

from rps_tfdata.pipeline.reading import listing
from rps_tfdata.trainer import synthetic_hands


def test_layout_names_and_sizes(tmp_path):
    paths = synthetic_hands.write_dataset(str(tmp_path), 3, size=40, seed=0)
    split = listing.list_all(str(tmp_path))
    assert split.class_names == ["paper", "rock", "scissors"]
    assert sorted(split.paths) == sorted(paths) and len(paths) == 9
    assert os.path.basename(split.paths[0]) == "paper01-000.png"
    image = tf.io.decode_png(tf.io.read_file(paths[0]))
    assert image.shape == (40, 40, 3) and image.dtype == tf.uint8


def test_file_names_follow_the_real_scheme():
    assert synthetic_hands.file_name("rock", 0) == "rock01-000.png"
    assert synthetic_hands.file_name("scissors", 245) == "scissors03-005.png"


def test_same_seed_same_images_other_seed_other_images():
    def draw(seed):
        return synthetic_hands.draw_hand("paper", 64, np.random.default_rng([seed, 0, 0]))

    np.testing.assert_array_equal(draw(1), draw(1))
    assert not np.array_equal(draw(1), draw(2))


def test_gestures_differ_in_hand_area():
    """Paper spreads five long fingers, rock is a fist: over many poses paper covers more."""

    def hand_fraction(gesture):
        fractions = []
        for i in range(20):
            image = synthetic_hands.draw_hand(gesture, 96, np.random.default_rng(i)).astype(float)
            fractions.append(
                (image.mean(axis=2) < 215).mean()
            )  # skin is darker than the background
        return np.mean(fractions)

    paper, rock, scissors = (hand_fraction(g) for g in synthetic_hands.CLASS_NAMES)
    assert paper > scissors > rock


def test_full_size_pngs_are_about_as_large_as_the_real_ones(tmp_path):
    paths = synthetic_hands.write_dataset(str(tmp_path), 4, size=300, seed=3)
    mean_kib = np.mean([os.path.getsize(p) for p in paths]) / 1024
    assert 60 < mean_kib < 100  # the real rps.zip images average 77.8 KiB
