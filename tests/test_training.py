"""train_and_evaluate end to end on tiny synthetic data, and the run it leaves behind."""

import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.keras.preprocessing.image import img_to_array, load_img

from rps_tfdata.core import artifacts, evaluation, files, plan, prediction, synthetic, training
from rps_tfdata.core import config as config_lib
from rps_tfdata.core.errors import (
    ConfigError,
    DatasetLayoutError,
    InputNotFoundError,
    TrainingStoppedError,
)

EPOCHS = 2


@pytest.fixture(scope="module")
def held_out_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("test_set"))
    synthetic.write_dataset(out, 3, size=64, seed=2)
    return out


def config_for(train_dir, model_dir, **changes):
    return config_lib.TrainConfig(
        data_dir=train_dir,
        model_dir=str(model_dir),
        image_size=48,
        batch_size=8,
        **{"epochs": EPOCHS, **changes},
    )


@pytest.fixture(scope="module")
def finished_run(synthetic_dir, held_out_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run")
    metrics = training.train_and_evaluate(
        config_for(synthetic_dir, model_dir, test_dir=held_out_dir)
    )
    return str(model_dir), metrics


def test_run_writes_every_artifact(finished_run):
    model_dir, _ = finished_run
    for name in (
        artifacts.BEST_WEIGHTS,
        artifacts.FINAL_MODEL,
        artifacts.CLASS_NAMES,
        artifacts.PREPROCESSING,
        artifacts.HISTORY,
        artifacts.METRICS,
        artifacts.RUN_CONFIG,
    ):
        assert os.path.isfile(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, artifacts.CHECKPOINTS))
    assert os.listdir(os.path.join(model_dir, artifacts.LOGS))  # TensorBoard event files
    assert artifacts.read_json(model_dir, artifacts.CLASS_NAMES) == list(synthetic.CLASS_NAMES)


def test_history_has_one_row_per_epoch_with_throughput(finished_run):
    model_dir, _ = finished_run
    with open(os.path.join(model_dir, artifacts.HISTORY)) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == EPOCHS
    for row in rows:
        assert float(row["train_images_per_sec"]) > 0 and float(row["epoch_seconds"]) > 0
        assert float(row["peak_rss_mb"]) > 100  # TensorFlow alone takes more
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(row)


def test_metrics_come_from_the_best_weights(finished_run):
    model_dir, metrics = finished_run
    assert metrics == artifacts.read_json(model_dir, artifacts.METRICS)
    with open(os.path.join(model_dir, artifacts.HISTORY)) as f:
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


def test_a_rerun_of_a_finished_run_reports_it_without_training(finished_run, synthetic_dir):
    model_dir, metrics = finished_run
    modified = os.path.getmtime(os.path.join(model_dir, artifacts.FINAL_MODEL))
    held_out_dir = artifacts.read_json(model_dir, artifacts.RUN_CONFIG)["test_dir"]
    again = training.train_and_evaluate(config_for(synthetic_dir, model_dir, test_dir=held_out_dir))
    assert again == metrics
    assert os.path.getmtime(os.path.join(model_dir, artifacts.FINAL_MODEL)) == modified
    with pytest.raises(ConfigError, match=f"--epochs=1 is fewer than the {EPOCHS} epochs"):
        training.train_and_evaluate(
            config_for(synthetic_dir, model_dir, test_dir=held_out_dir, epochs=1)
        )


def test_saved_model_holds_the_best_weights(finished_run):
    model_dir, _ = finished_run
    run = artifacts.load_run(model_dir)
    best = keras.models.clone_model(run.model)
    best.load_weights(os.path.join(model_dir, artifacts.BEST_WEIGHTS))
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
    report = evaluation.format_report(result)
    assert "scissors" in report.splitlines()[-1]
    json.dumps(result)  # serialisable for --json


def test_classify_gives_the_models_top_class_for_each_file(finished_run, held_out_dir):
    model_dir, _ = finished_run
    paths = prediction.expand_paths([held_out_dir])
    assert len(paths) == 9
    run = artifacts.load_run(model_dir)
    rows, bad = prediction.classify(run, paths)
    assert [row[0] for row in rows] == paths and bad == []
    # The same images read independently, by Keras' own loader (PIL), as IDG reads them.
    images = np.stack(
        [img_to_array(load_img(p, target_size=(48, 48), interpolation="nearest")) for p in paths]
    )
    expected = run.model.predict(images / 255.0, verbose=0)
    for (_, name, probability), row in zip(rows, expected, strict=True):
        assert name == run.class_names[int(row.argmax())]
        assert probability == pytest.approx(float(row.max()), abs=1e-6)


def test_expand_paths_rejects_missing_files_and_empty_folders(tmp_path):
    with pytest.raises(InputNotFoundError, match="nope.png"):
        prediction.expand_paths([str(tmp_path / "nope.png")])
    with pytest.raises(InputNotFoundError, match="no image files"):
        prediction.expand_paths([str(tmp_path)])


def test_test_set_with_other_classes_is_rejected(synthetic_dir, tmp_path):
    other = tmp_path / "other"
    (other / "cats").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="cats"):
        training.train_and_evaluate(config_for(synthetic_dir, tmp_path / "m", test_dir=str(other)))


def test_too_few_images_for_validation_is_explained(tmp_path):
    synthetic.write_dataset(str(tmp_path / "tiny"), 2, size=48)
    with pytest.raises(DatasetLayoutError, match="validation subset .* is empty.* at least 5 "):
        training.train_and_evaluate(config_for(str(tmp_path / "tiny"), tmp_path / "m"))
    # 0.3 * 3 is 0.8999...: IDG's truncation needs 4 images, not round(1 / 0.3) = 3.
    with pytest.raises(DatasetLayoutError, match="at least 4 images for validation_split=0.3"):
        training.train_and_evaluate(
            config_for(str(tmp_path / "tiny"), tmp_path / "m", validation_split=0.3)
        )


def test_make_augmentation_follows_the_mode(tmp_path):
    assert plan.make_augmentation(config_for("d", tmp_path, augment="none")) is None
    layer = plan.make_augmentation(config_for("d", tmp_path, seed=5))
    assert layer.get_config()["rotation_range"] == 40 and layer.seed == 5


def test_device_augmentation_trains_inside_the_step_and_saves_a_plain_model(
    synthetic_dir, tmp_path
):
    config = config_for(synthetic_dir, tmp_path, augment_on="device", jit_compile="true", epochs=1)
    metrics = training.train_and_evaluate(config)
    assert np.isfinite(metrics["val_loss"])
    run = artifacts.load_run(str(tmp_path))
    # No training-only layer travels with the model: augmentation lived in the step.
    assert not any(type(layer).__name__ == "IDGAugmentation" for layer in run.model.layers)


def test_host_and_device_augmentation_train_the_same_weights(synthetic_dir, tmp_path):
    """Uint8 crosses to the step, which rescales after augmenting, as the host does: the
    placements run the same arithmetic (they differed in rounding when the pipeline
    rescaled before the device augmented)."""
    weights = {}
    for place in ("host", "device"):
        model_dir = tmp_path / place
        config = config_for(synthetic_dir, model_dir, augment_on=place, jit_compile="false")
        training.train_and_evaluate(config._replace(epochs=1))
        weights[place] = artifacts.load_run(str(model_dir)).model.get_weights()
    for host, device in zip(weights["host"], weights["device"], strict=True):
        np.testing.assert_array_equal(host, device)


def test_augment_on_auto_follows_the_machine():
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert plan.resolve_augment_on("auto") == ("device" if has_gpu else "host")
    assert plan.resolve_augment_on("device") == "device"
    assert plan.resolve_augment_on("host") == "host"


def test_validation_augmentation_on_device_is_refused(synthetic_dir, tmp_path):
    config = config_for(synthetic_dir, tmp_path, augment_on="device", augment_validation=True)
    with pytest.raises(ConfigError, match="--augment_validation needs --augment_on=host"):
        training.train_and_evaluate(config)


def test_uncompiled_augmentation_inside_an_xla_step_is_refused(tmp_path):
    config = config_for("d", tmp_path, augment_on="device", jit_augment=False, jit_compile="true")
    with pytest.raises(ConfigError, match="--nojit_augment cannot run inside an XLA"):
        plan.make_plan(config)
    for allowed in (
        config._replace(jit_compile="false"),
        config._replace(augment_on="host"),
        config._replace(jit_augment=True),
    ):
        plan.make_plan(allowed)


@pytest.fixture()
def own_data(tmp_path):
    """A private copy of tiny data, for tests that change files."""
    out = str(tmp_path / "data")
    synthetic.write_dataset(out, 5, size=48, seed=6)
    return out


def test_a_diverging_run_stops_with_a_clear_message(own_data, tmp_path):
    config = config_for(own_data, tmp_path / "run", learning_rate=1e38, epochs=3)
    with pytest.raises(TrainingStoppedError, match="training diverged: the loss is not finite"):
        training.train_and_evaluate(config)
    assert not os.path.exists(tmp_path / "run" / artifacts.METRICS)


def test_a_failing_final_evaluation_keeps_the_model_and_training_metrics(
    own_data, tmp_path, monkeypatch
):
    config = config_for(own_data, tmp_path / "run", epochs=1)
    with monkeypatch.context() as patch:
        patch.setattr(evaluation, "evaluate_prepared", _raise_disk_error)
        with pytest.raises(OSError, match="the final evaluation failed"):
            training.train_and_evaluate(config)
    partial = artifacts.read_json(str(tmp_path / "run"), artifacts.METRICS)
    assert partial["finished"] is False and partial["epochs_run"] == 1
    assert os.path.isfile(tmp_path / "run" / artifacts.FINAL_MODEL)
    # The rerun only evaluates: the trained epoch is not trained again.
    metrics = training.train_and_evaluate(config)
    assert metrics["finished"] and "val_accuracy" in metrics
    with open(tmp_path / "run" / artifacts.HISTORY) as f:
        assert len(list(csv.DictReader(f))) == 1


def _raise_disk_error(*args, **kwargs):
    raise OSError("the final evaluation failed")


def test_other_settings_are_refused_unless_overwrite(own_data, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "keep.txt").parent.mkdir()
    (run_dir / "keep.txt").write_text("not ours")
    training.train_and_evaluate(config_for(own_data, run_dir, epochs=1, seed=1))
    other = config_for(own_data, run_dir, epochs=1, seed=2, learning_rate=0.01)
    with pytest.raises(
        ConfigError, match=r"--learning_rate=0.001 \(now 0.01\), --seed=1 \(now 2\)"
    ):
        training.train_and_evaluate(other)
    training.train_and_evaluate(other, overwrite=True)
    assert artifacts.read_json(str(run_dir), artifacts.RUN_CONFIG)["seed"] == 2
    assert (run_dir / "keep.txt").read_text() == "not ours"  # only the run's files went


def test_changed_image_files_are_refused_in_the_same_folder(own_data, tmp_path):
    config = config_for(own_data, tmp_path / "run", epochs=1)
    training.train_and_evaluate(config)
    changed = os.path.join(own_data, "rock", "rock01-000.png")
    os.utime(changed, ns=(0, 0))
    with pytest.raises(ConfigError, match="image files under --data_dir=.* changed since"):
        training.train_and_evaluate(config._replace(epochs=2))


def test_a_model_dir_that_cannot_be_written_is_named_before_any_work(own_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = config_for(own_data, blocker / "run")
    with pytest.raises(ConfigError, match=r"--model_dir=.*file/run cannot be written"):
        training.train_and_evaluate(config)


def test_every_artifact_of_a_run_honours_the_umask(finished_run):
    model_dir, _ = finished_run
    mask = files.umask()
    for folder, _, found in os.walk(model_dir):
        if folder != model_dir:  # made by the test; what the run makes inside it counts
            assert os.stat(folder).st_mode & 0o777 == 0o777 & ~mask, folder
        for name in found:
            path = os.path.join(folder, name)
            assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask, path


def test_written_files_and_folders_take_the_mode_the_umask_asks_for(tmp_path):
    previous = os.umask(0o027)
    try:
        written = files.write_json(str(tmp_path / "a.json"), {"x": 1})
        built = files.build_folder(str(tmp_path / "built"), lambda staging: None)
    finally:
        os.umask(previous)
    assert os.stat(written).st_mode & 0o777 == 0o640
    assert os.stat(built).st_mode & 0o777 == 0o750


@pytest.mark.parametrize("strategy, cpu_devices", [("one_device", 1), ("mirrored", 2)])
def test_several_steps_per_call_train_the_same_weights_bit_for_bit(
    synthetic_dir, tmp_path, strategy, cpu_devices
):
    """24 training images in batches of 8 (or 2 replicas of 4): 3 steps an epoch, cut
    into calls of 2 (and at --checkpoint_every's steps)."""
    runs = {}
    for per_call in (1, 2):
        model_dir = tmp_path / f"loop{per_call}"
        config = config_for(
            synthetic_dir,
            model_dir,
            steps_per_loop=per_call,
            checkpoint_every=2,
            strategy=strategy,
            cpu_devices=cpu_devices,
        )
        training.train_and_evaluate(config)
        with open(model_dir / artifacts.HISTORY) as f:
            history = [
                {k: v for k, v in row.items() if "sec" not in k and "rss" not in k}
                for row in csv.DictReader(f)
            ]
        runs[per_call] = artifacts.load_run(str(model_dir)).model.get_weights(), history
    for one, two in zip(runs[1][0], runs[2][0], strict=True):
        np.testing.assert_array_equal(one, two)
    assert runs[1][1] == runs[2][1]  # loss and accuracy too, to the last digit


def test_steps_per_loop_is_refused_with_the_data_service(tmp_path):
    config = config_for("d", tmp_path, steps_per_loop=4, data_service="grpc://127.0.0.1:1")
    with pytest.raises(ConfigError, match="--steps_per_loop runs several steps"):
        config_lib.check_config(config)
    with pytest.raises(ConfigError, match="--profile_steps='5' is not two step numbers"):
        config_lib.check_config(config_for("d", tmp_path, profile_steps="5"))
    assert config_lib.profile_range("3, 7") == (3, 7) and config_lib.profile_range("") is None


def test_profile_steps_write_a_trace_into_the_run_logs(synthetic_dir, tmp_path):
    config = config_for(synthetic_dir, tmp_path, epochs=1, profile_steps="2,3")
    training.train_and_evaluate(config)
    traces = list((tmp_path / artifacts.LOGS / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000


def test_xla_over_several_logical_cpus_is_refused_in_one_line(tmp_path):
    """TensorFlow's XLA fails such a step with a traceback about variables on another
    device; the plan refuses it first."""
    config = config_for("d", tmp_path, strategy="mirrored", cpu_devices=2, jit_compile="true")
    if tf.config.list_logical_devices("GPU"):
        plan.make_plan(config)  # GPUs: the mirrored step compiles
        return
    with pytest.raises(ConfigError, match="cannot compile a step for several logical CPU"):
        plan.make_plan(config)
