"""The recipe beyond the seed's: the learning-rate schedule, class weights, early
stopping; each for its effect, and recorded with the run like any learning setting."""

import csv
import os
import signal

import numpy as np
import pytest

from rps_tfdata.infra.errors import ConfigError
from rps_tfdata.trainer import artifacts, recipe, run_state, training
from rps_tfdata.trainer import config as config_lib

from .helpers import (
    assert_same_final_weights,
    launch,
    module,
    read_until,
    run_python,
    small_run,
    small_run_flags,
    stopped_at_exit,
)


def rates(schedule, steps):
    return [float(schedule(step).numpy()) for step in steps]


def test_the_cosine_schedule_warms_up_then_falls_to_zero_at_the_last_step():
    # 10 warmup steps, 110 in all; the s-th update (s = step + 1) takes rate(step)
    schedule = recipe.learning_rate(1e-3, "cosine", 1, 11, 10)
    assert (schedule.warmup_steps, schedule.total_steps) == (10, 110)
    first, mid_warmup, peak, middle, last = rates(schedule, [0, 4, 9, 59, 109])
    assert first == pytest.approx(1e-4) and mid_warmup == pytest.approx(5e-4)
    assert peak == pytest.approx(1e-3)
    assert middle == pytest.approx(0.5e-3, rel=1e-5)  # half-way down the cosine
    assert last == pytest.approx(0.0, abs=1e-12)
    assert rates(schedule, [200]) == [pytest.approx(0.0, abs=1e-12)]  # stays at 0 beyond
    decay = np.diff(rates(schedule, range(9, 110)))
    assert (decay <= 0).all()


def test_a_constant_rate_is_the_seeds_float_and_warmup_rises_to_it():
    assert recipe.learning_rate(1e-3, "constant", 0, 25, 63) == 1e-3  # Adam takes the float
    warm = recipe.learning_rate(1e-3, "constant", 2, 25, 5)
    assert rates(warm, [0, 9, 10, 1000]) == pytest.approx([1e-4, 1e-3, 1e-3, 1e-3])
    assert recipe.rate_after(warm, 5) == pytest.approx(5e-4)  # the end of epoch 1
    assert recipe.rate_after(1e-3, 5) == 1e-3


def test_balanced_class_weights_make_every_class_weigh_the_same():
    assert recipe.class_weights("none", [10, 20, 30]) is None
    weights = recipe.class_weights("balanced", [10, 20, 30])
    assert weights == pytest.approx([2.0, 1.0, 2 / 3])
    assert np.multiply(weights, [10, 20, 30]) == pytest.approx([20, 20, 20])


def history(*val_losses):
    return [{"epoch": k + 1, "val_loss": v} for k, v in enumerate(val_losses)]


def test_early_stopping_ends_after_patience_epochs_without_a_better_val_loss():
    assert recipe.early_stop(history(1.0, 0.9, 0.95, 0.96), 0, 0.0) is None  # off
    stop = recipe.early_stop(history(1.0, 0.9, 0.95, 0.96, 0.5), 2, 0.0)
    assert (stop.epoch, stop.best_epoch, stop.best_val_loss) == (4, 2, 0.9)
    assert "for 2 epoch(s)" in stop.reason
    assert recipe.early_stop(history(1.0, 0.9, 0.95, 0.85), 2, 0.0) is None
    # lower by less than min_delta is not better
    assert recipe.early_stop(history(1.0, 0.99, 0.98), 2, 0.05).epoch == 3


@pytest.fixture(scope="module")
def unbalanced_dir(tmp_path_factory):
    """Synthetic hands, 10 of paper, 10 of rock, 5 of scissors (8, 8 and 4 for training)."""
    from rps_tfdata.trainer import synthetic_hands

    out = str(tmp_path_factory.mktemp("unbalanced"))
    synthetic_hands.write_dataset(out, 10, size=48, seed=5)
    for name in sorted(os.listdir(os.path.join(out, "scissors")))[5:]:
        os.remove(os.path.join(out, "scissors", name))
    return out


def history_csv(model_dir):
    with open(os.path.join(model_dir, artifacts.HISTORY_FILE)) as f:
        return list(csv.DictReader(f))


def test_a_run_stops_early_says_why_and_a_rerun_trains_nothing(unbalanced_dir, tmp_path):
    """With a min_delta no epoch can beat, patience 1 ends the run after epoch 2."""
    config = small_run(
        unbalanced_dir, tmp_path / "run", epochs=5, early_stopping_patience=1,
        early_stopping_min_delta=100.0,
    )  # fmt: skip
    metrics = training.train_and_evaluate(config)
    assert metrics["epochs_run"] == 2 and metrics["finished"]
    assert metrics["ended"].startswith("early stopping after epoch 2: val_loss has not gone below")
    assert len(history_csv(config.model_dir)) == 2
    again = training.train_and_evaluate(config._replace(epochs=9))  # not undone silently
    assert again == metrics and len(history_csv(config.model_dir)) == 2
    with pytest.raises(ConfigError, match="--early_stopping_patience=1 \\(now 3\\)"):
        training.train_and_evaluate(config._replace(early_stopping_patience=3))


def test_a_cosine_run_records_its_rates_and_refuses_another_epoch_count(unbalanced_dir, tmp_path):
    config = small_run(
        unbalanced_dir, tmp_path / "run", epochs=2, lr_schedule="cosine", warmup_epochs=1,
        class_weight="balanced", label_smoothing=0.1,
    )  # fmt: skip
    metrics = training.train_and_evaluate(config)
    rows = history_csv(config.model_dir)
    # 20 training images in batches of 8: 3 steps an epoch; epoch 1 warms up to the peak
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx([1e-3, 0.0], abs=1e-9)
    assert metrics["class_weights"] == pytest.approx(
        {"paper": 20 / 24, "rock": 20 / 24, "scissors": 20 / 12}
    )
    assert metrics["ended"] == "after --epochs=2"
    with pytest.raises(ConfigError, match="^--epochs=3: the run in .* follows a cosine"):
        training.train_and_evaluate(config._replace(epochs=3))


def test_a_run_recorded_before_the_recipe_existed_continues():
    """run_config.json without the recipe's settings: that run used their defaults, so
    the same command continues it; a recipe setting changed from its default does not."""
    current = config_lib.settings_of(small_run("data", "run", epochs=2))
    recorded = {k: v for k, v in current.items() if k not in recipe_names()}
    assert run_state.differing(recorded, current) == []
    changed = {**current, "label_smoothing": 0.1}
    assert run_state.differing(recorded, changed) == ["label_smoothing"]


def recipe_names():
    return ("lr_schedule", "warmup_epochs", "label_smoothing", "class_weight",
            "early_stopping_patience", "early_stopping_min_delta")  # fmt: skip


RECIPE = (
    "--epochs=2", "--lr_schedule=cosine", "--warmup_epochs=1", "--label_smoothing=0.1",
    "--class_weight=balanced", "--early_stopping_patience=5", "--checkpoint_every=1",
)  # fmt: skip


@pytest.mark.slow
def test_a_recipe_run_killed_inside_an_epoch_ends_as_one_never_killed(unbalanced_dir, tmp_path):
    """SIGKILL after a save inside epoch 2: the schedule goes on from the optimizer's
    step count in the checkpoint, so the same command ends with the same weights."""
    reference = run_python(
        module("train", *small_run_flags(unbalanced_dir, tmp_path / "ref", *RECIPE))
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    flags = small_run_flags(unbalanced_dir, tmp_path / "killed", *RECIPE)
    process = launch(module("train", *flags), merge=True)
    with stopped_at_exit(process):
        read_until(process, "saved the run at step 1 of epoch 2")
        process.send_signal(signal.SIGKILL)
        process.wait()
    again = run_python(module("train", *flags))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing the run in" in again.stderr
    assert history_csv(tmp_path / "killed")[1]["learning_rate"] == "0.0"
    assert_same_final_weights(str(tmp_path / "killed"), str(tmp_path / "ref"))
