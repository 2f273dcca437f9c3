"""train_and_evaluate end to end on tiny synthetic data, and the run it leaves behind."""

import csv
import json
import os

import keras
import numpy as np
import pytest
from tensorflow.keras.preprocessing.image import img_to_array, load_img

from rps_tfdata.infra import atomic
from rps_tfdata.infra.errors import (
    ConfigError,
    DatasetLayoutError,
    InputNotFoundError,
    TrainingStoppedError,
)
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation
from rps_tfdata.serving import predictions as served
from rps_tfdata.trainer import (
    artifacts,
    datasets,
    evaluation,
    plan,
    run_lock,
    run_state,
    synthetic_hands,
    training,
)
from rps_tfdata.trainer import config as config_lib

from .helpers import FINISHED_EPOCHS, finished_config, small_run

EPOCHS = FINISHED_EPOCHS


def test_run_writes_every_artifact(finished_run):
    model_dir, _ = finished_run
    for name in (
        artifacts.BEST_WEIGHTS_FILE,
        artifacts.FINAL_MODEL_FILE,
        artifacts.CLASS_NAMES_FILE,
        artifacts.PREPROCESSING_FILE,
        artifacts.HISTORY_FILE,
        artifacts.METRICS_FILE,
        artifacts.RUN_CONFIG_FILE,
    ):
        assert os.path.isfile(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, artifacts.CHECKPOINTS_FOLDER))
    assert os.listdir(os.path.join(model_dir, artifacts.LOGS_FOLDER))  # TensorBoard event files
    assert artifacts.read_json(model_dir, artifacts.CLASS_NAMES_FILE) == list(
        synthetic_hands.CLASS_NAMES
    )


def test_history_has_one_row_per_epoch_with_throughput(finished_run):
    model_dir, _ = finished_run
    with open(os.path.join(model_dir, artifacts.HISTORY_FILE)) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == EPOCHS
    for row in rows:
        assert float(row["train_images_per_sec"]) > 0 and float(row["epoch_seconds"]) > 0
        assert float(row["peak_rss_mb"]) > 100  # TensorFlow alone takes more
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(row)


def test_metrics_come_from_the_best_weights(finished_run):
    model_dir, metrics = finished_run
    assert metrics == artifacts.read_json(model_dir, artifacts.METRICS_FILE)
    with open(os.path.join(model_dir, artifacts.HISTORY_FILE)) as f:
        val_losses = [float(row["val_loss"]) for row in csv.DictReader(f)]
    # The final evaluation re-reads validation un-augmented with the reloaded best weights,
    # so it reproduces the best epoch's val_loss.
    assert metrics["val_loss"] == pytest.approx(min(val_losses), rel=1e-6)
    assert metrics["finished"] is True and metrics["skipped_images"] == []
    assert metrics["best_epoch"] == 1 + int(np.argmin(val_losses))
    assert metrics["epochs_run"] == EPOCHS
    assert (metrics["num_train_images"], metrics["num_validation_images"]) == (24, 6)
    assert metrics["num_test_images"] == 9
    for key in ("val_accuracy", "test_accuracy", "test_loss", "train_images_per_sec"):
        assert key in metrics
    assert metrics["peak_rss_mb"] > 100


def test_a_rerun_of_a_finished_run_reports_it_without_training(
    finished_run, synthetic_dir, held_out_dir
):
    model_dir, metrics = finished_run
    modified = os.path.getmtime(os.path.join(model_dir, artifacts.FINAL_MODEL_FILE))
    again = training.train_and_evaluate(finished_config(synthetic_dir, held_out_dir, model_dir))
    assert again == metrics
    assert os.path.getmtime(os.path.join(model_dir, artifacts.FINAL_MODEL_FILE)) == modified
    with pytest.raises(ConfigError, match=f"--epochs=1 is fewer than the {EPOCHS} epochs"):
        training.train_and_evaluate(
            finished_config(synthetic_dir, held_out_dir, model_dir, epochs=1)
        )


def test_saved_model_holds_the_best_weights(finished_run):
    model_dir, _ = finished_run
    run = artifacts.load_run(model_dir)
    best = keras.models.clone_model(run.model)
    best.load_weights(os.path.join(model_dir, artifacts.BEST_WEIGHTS_FILE))
    for saved, reference in zip(run.model.get_weights(), best.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, reference)
    assert run.options.image_size == (48, 48) and run.options.resize_method == "pil_nearest"


def test_evaluate_folder_agrees_with_training_metrics(finished_run, held_out_dir):
    model_dir, metrics = finished_run
    result = evaluation.evaluate_folder(artifacts.load_run(model_dir), held_out_dir)
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert result["loss"] == pytest.approx(metrics["test_loss"], rel=1e-4)
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 9
    assert np.trace(matrix) / 9 == pytest.approx(result["accuracy"])
    assert result["confusion_matrix"] == metrics["test_report"]["confusion_matrix"]
    report = evaluation.format_report(result)
    assert report.splitlines()[2].startswith("paper") and "macro" in report
    assert report.count("\ttrue ") == min(len(result["misclassified"]), 20)
    json.dumps(result)  # serialisable for --json


def test_per_class_figures_and_mistakes_follow_their_definitions():
    confusion = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])  # no scissors, none predicted
    report = evaluation.per_class(confusion, ["paper", "rock", "scissors"])
    assert report["paper"] == pytest.approx(
        {
            "precision": 5 / 7,
            "recall": 5 / 6,
            "f1": 2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6),
            "support": 6,
        }
    )
    assert report["rock"]["precision"] == pytest.approx(2 / 3) and report["rock"]["recall"] == 0.5
    assert report["scissors"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro"]["recall"] == pytest.approx((5 / 6 + 0.5 + 0) / 3)
    probabilities = np.array([[0.9, 0.1, 0.0], [0.3, 0.6, 0.1], [0.2, 0.1, 0.7], [0.4, 0.5, 0.1]])
    wrong = evaluation.misclassified(
        ["a", "b", "c", "d"], probabilities, np.array([0, 0, 2, 1]), ["p", "r", "s"]
    )
    assert wrong == [{"path": "b", "true": "p", "predicted": "r", "probability": 0.6}]


def test_classify_gives_the_models_top_class_for_each_file(finished_run, held_out_dir):
    model_dir, _ = finished_run
    paths = served.expand_paths([held_out_dir])
    assert len(paths) == 9
    run = artifacts.load_run(model_dir)
    predictions = evaluation.classify(run, paths)
    assert [row[0] for row in predictions.rows] == paths and predictions.bad == []
    # The same images read independently, by Keras' own loader (PIL), as IDG reads them.
    images = np.stack(
        [img_to_array(load_img(p, target_size=(48, 48), interpolation="nearest")) for p in paths]
    )
    expected = run.model.predict(images / 255.0, verbose=0)
    for (_, ranked), row in zip(predictions.top(2), expected, strict=True):
        order = np.argsort(-row)[:2]
        assert [name for name, _ in ranked] == [run.class_names[k] for k in order]
        assert [p for _, p in ranked] == pytest.approx(row[order].tolist(), abs=1e-6)


def test_expand_paths_rejects_missing_files_and_empty_folders(tmp_path):
    with pytest.raises(InputNotFoundError, match="nope.png"):
        served.expand_paths([str(tmp_path / "nope.png")])
    with pytest.raises(InputNotFoundError, match="no image files"):
        served.expand_paths([str(tmp_path)])


def test_test_set_with_other_classes_is_rejected(synthetic_dir, tmp_path):
    other = tmp_path / "other"
    (other / "cats").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="cats"):
        training.train_and_evaluate(small_run(synthetic_dir, tmp_path / "m", test_dir=str(other)))


def test_too_few_images_for_validation_is_explained(tmp_path):
    synthetic_hands.write_dataset(str(tmp_path / "tiny"), 2, size=48)
    with pytest.raises(DatasetLayoutError, match="validation subset .* is empty.* at least 5 "):
        training.train_and_evaluate(small_run(str(tmp_path / "tiny"), tmp_path / "m"))
    # 0.3 * 3 is 0.8999...: IDG's truncation needs 4 images, not round(1 / 0.3) = 3.
    with pytest.raises(DatasetLayoutError, match="at least 4 images for validation_split=0.3"):
        training.train_and_evaluate(
            small_run(str(tmp_path / "tiny"), tmp_path / "m", validation_split=0.3)
        )


def test_a_run_with_augmentation_on_the_device_keeps_no_augmentation_in_its_model(tmp_path):
    """The augmentation lives in the train step: the model the run saves and serves is
    the seed's CNN alone."""
    config = small_run("d", tmp_path, augment_on="device")
    built = training.build(config, plan.make_plan(config), 3)
    assert built.steps.train is not None
    assert not any(isinstance(layer, IDGAugmentation) for layer in built.model.layers)


def test_validation_augmentation_on_device_is_refused_before_any_read(tmp_path):
    config = small_run("/nonexistent", tmp_path, augment_on="device", augment_validation=True)
    with pytest.raises(ConfigError, match="--augment_validation needs --augment_on=host"):
        training.train_and_evaluate(config)


@pytest.fixture()
def own_data(tmp_path):
    """A private copy of tiny data, for tests that change files."""
    out = str(tmp_path / "data")
    synthetic_hands.write_dataset(out, 5, size=48, seed=6)
    return out


def test_a_diverging_run_stops_with_a_clear_message(own_data, tmp_path):
    config = small_run(own_data, tmp_path / "run", learning_rate=1e38)
    with pytest.raises(TrainingStoppedError, match="training diverged: the loss is not finite"):
        training.train_and_evaluate(config)
    assert not os.path.exists(tmp_path / "run" / artifacts.METRICS_FILE)


def test_a_failing_final_evaluation_keeps_the_model_and_training_metrics(
    copy_of_finished_run, synthetic_dir, held_out_dir, monkeypatch
):
    """The finished run's copy as a run killed after its last epoch (no metrics yet): its
    end is written again, and the evaluation, last, fails."""
    run_dir = copy_of_finished_run
    os.remove(os.path.join(run_dir, artifacts.METRICS_FILE))
    os.remove(os.path.join(run_dir, artifacts.FINAL_MODEL_FILE))
    config = finished_config(synthetic_dir, held_out_dir, run_dir)
    with monkeypatch.context() as patch:
        patch.setattr(evaluation, "evaluate_split", _raise_disk_error)
        with pytest.raises(OSError, match="the final evaluation failed"):
            training.train_and_evaluate(config)
    partial = artifacts.read_json(run_dir, artifacts.METRICS_FILE)
    assert partial["finished"] is False and partial["epochs_run"] == EPOCHS
    assert os.path.isfile(os.path.join(run_dir, artifacts.FINAL_MODEL_FILE))
    # The rerun only evaluates: no epoch is trained again.
    metrics = training.train_and_evaluate(config)
    assert metrics["finished"] and "val_accuracy" in metrics
    with open(os.path.join(run_dir, artifacts.HISTORY_FILE)) as f:
        assert len(list(csv.DictReader(f))) == EPOCHS


def _raise_disk_error(*args, **kwargs):
    raise OSError("the final evaluation failed")


def recorded_run(config, model_dir):
    """`model_dir` as a run of `config` leaves it, without training: its recorded
    settings (with the images' fingerprint) and an artifact."""
    source = datasets.open_source(config)
    settings = {**config_lib.settings_of(config), "data_files": source.fingerprint()}
    run_state.write_settings(str(model_dir), settings)
    atomic.write_text(os.path.join(model_dir, artifacts.HISTORY_FILE), "epoch\n")


def test_other_settings_are_refused_and_overwrite_removes_only_the_runs_files(own_data, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("not ours")
    recorded_run(small_run(own_data, run_dir, seed=1), run_dir)
    other = small_run(own_data, run_dir, seed=2, learning_rate=0.01)
    with pytest.raises(
        ConfigError, match=r"--learning_rate=0.001 \(now 0.01\), --seed=1 \(now 2\)"
    ):
        training.train_and_evaluate(other)
    settings = config_lib.settings_of(other)
    assert run_state.claim(str(run_dir), settings, 1, overwrite=True) is None
    # Only the run's files went (the lock file stays: it is never deleted).
    assert sorted(os.listdir(run_dir)) == sorted(["keep.txt", run_lock.LOCK_FILE])


def test_changed_image_files_are_refused_in_the_same_folder(own_data, tmp_path):
    config = small_run(own_data, tmp_path / "run")
    recorded_run(config, tmp_path / "run")
    os.utime(os.path.join(own_data, "rock", "rock01-000.png"), ns=(0, 0))
    with pytest.raises(ConfigError, match="image files under --data_dir=.* changed since"):
        training.train_and_evaluate(config._replace(epochs=2))


def test_a_model_dir_that_cannot_be_written_is_named_before_any_work(own_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = small_run(own_data, blocker / "run")
    with pytest.raises(ConfigError, match=r"--model_dir=.*file/run cannot be written"):
        training.train_and_evaluate(config)


def test_every_artifact_of_a_run_honours_the_umask(finished_run):
    model_dir, _ = finished_run
    mask = atomic.umask()
    for folder, _, found in os.walk(model_dir):
        if folder != model_dir:  # made by the test; what the run makes inside it counts
            assert os.stat(folder).st_mode & 0o777 == 0o777 & ~mask, folder
        for name in found:
            path = os.path.join(folder, name)
            assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask, path


def test_written_files_and_folders_take_the_mode_the_umask_asks_for(tmp_path):
    previous = os.umask(0o027)
    try:
        written = atomic.write_json(str(tmp_path / "a.json"), {"x": 1})
        built = atomic.build_folder(str(tmp_path / "built"), lambda staging: None)
    finally:
        os.umask(previous)
    assert os.stat(written).st_mode & 0o777 == 0o640
    assert os.stat(built).st_mode & 0o777 == 0o750
