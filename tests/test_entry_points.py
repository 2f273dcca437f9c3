"""The command-line entry points as a user runs them, and the named flagfiles."""

import json
import os
import subprocess
import sys

import pytest
from absl import flags
from absl.testing import flagsaver

from rps_tfdata import artifacts, seed_reference, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS


def run_module(module, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", f"rps_tfdata.{module}", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def cli_run(synthetic_dir, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("cli_run"))
    result = run_module(
        "train",
        f"--data_dir={synthetic_dir}",
        f"--model_dir={model_dir}",
        "--epochs=1",
        "--image_size=48",
        "--batch_size=8",
        "--seed=7",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


def test_train_prints_progress_and_a_summary(cli_run):
    model_dir, result = cli_run
    assert "train_images_per_sec:" in result.stdout  # Keras' per-epoch line, with ours
    assert result.stdout.strip().splitlines()[-1].startswith("val_accuracy=")
    assert os.path.isfile(os.path.join(model_dir, artifacts.FINAL_MODEL))


def test_saved_flags_are_a_flagfile_that_repeats_the_run(cli_run, synthetic_dir):
    model_dir, _ = cli_run
    with flagsaver.flagsaver():
        FLAGS(["train", f"--flagfile={os.path.join(model_dir, artifacts.FLAGS)}"])
        config = train.make_config()
    assert (config.train_dir, config.model_dir) == (synthetic_dir, model_dir)
    assert (config.epochs, config.seed, config.input.image_size) == (1, 7, (48, 48))


def test_evaluate_prints_confusion_matrix_and_writes_json(cli_run, synthetic_dir, tmp_path):
    model_dir, _ = cli_run
    out = tmp_path / "eval.json"
    result = run_module(
        "evaluate", f"--model_dir={model_dir}", f"--data_dir={synthetic_dir}", f"--json={out}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy:" in result.stdout and "scissors" in result.stdout
    assert '"confusion_matrix"' in out.read_text()


def test_predict_prints_one_tab_separated_line_per_image(cli_run, synthetic_dir):
    model_dir, _ = cli_run
    rock = os.path.join(synthetic_dir, "rock")
    result = run_module("predict", f"--model_dir={model_dir}", rock)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(os.listdir(rock))
    path, name, probability = lines[0].split("\t")
    assert path.startswith(rock) and name in ("paper", "rock", "scissors")
    assert 0 <= float(probability) <= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--image_size=20"], "--image_size"),
        (["--validation_split=0"], "--validation_split must be in (0, 1)"),
        (["--learning_rate=-1"], "--learning_rate must be > 0"),
        (["--resize_method=cubic"], "--resize_method"),
        (["--data_dir=/nonexistent/rps"], "error: data folder '/nonexistent/rps' does not exist"),
    ],
)
def test_bad_input_gives_one_actionable_line_and_no_traceback(args, message, tmp_path):
    result = run_module("train", f"--model_dir={tmp_path}", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_without_a_run_names_the_missing_file(tmp_path, synthetic_dir):
    result = run_module("evaluate", f"--model_dir={tmp_path}", f"--data_dir={synthetic_dir}")
    assert result.returncode == 1
    assert f"{tmp_path}/model.keras not found" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["seed", "smoke"])
def test_flagfiles_parse(name):
    with flagsaver.flagsaver():
        FLAGS(["train", f"--flagfile={os.path.join(ROOT, 'flags', name + '.flags')}"])
        assert FLAGS.augment == "idg"
        if name == "seed":
            assert FLAGS.augment_validation and FLAGS.epochs == 25 and FLAGS.image_size == 150
            assert FLAGS.data_dir is None  # the seed downloads the official rps.zip
        else:
            assert FLAGS.data_dir == "runs/smoke_data" and not FLAGS.augment_validation


def test_seed_flagfile_is_the_seed_script():
    with flagsaver.flagsaver():
        FLAGS(["train", f"--flagfile={os.path.join(ROOT, 'flags', 'seed.flags')}", "--data_dir=d"])
        config = train.make_config()
    assert config.input.image_size == (150, 150) and config.input.batch_size == 32
    assert config.validation_split == seed_reference.SEED_VALIDATION_SPLIT
    assert (config.epochs, config.learning_rate) == (25, 0.001)
    assert config.augment == "idg" and config.augment_validation
    assert config.input.resize_method == "pil_nearest"  # IDG's flow_from_directory default


def test_benchmark_writes_every_figure_as_flat_json(synthetic_dir, tmp_path):
    from rps_tfdata import benchmark

    out = tmp_path / "bench.json"
    with flagsaver.flagsaver(
        data_dir=synthetic_dir,
        image_size=48,
        batch_size=4,
        repeats=2,
        steady_epochs=1,
        steps=4,
        window=2,
        e2e_epochs=2,
        mode="all",
        baseline="idg",
        json=str(out),
    ):
        benchmark.main(["benchmark"])
    figures = json.loads(out.read_text())
    for key in ("pipeline_cold", "pipeline_steady", "idg_pipeline", "step", "e2e", "idg_e2e"):
        assert figures[f"{key}_images_per_sec"] > 0, key
        assert figures[f"{key}_images_per_sec_low"] <= figures[f"{key}_images_per_sec"]
    assert figures["e2e_vs_step"] == pytest.approx(
        figures["e2e_images_per_sec"] / figures["step_images_per_sec"]
    )
    assert figures["tensorflow"] and figures["peak_rss_mb"] > 0


@pytest.mark.parametrize("name", ["bench", "gpu"])
def test_benchmark_flagfiles_parse(name):
    with flagsaver.flagsaver():
        FLAGS(["benchmark", f"--flagfile={os.path.join(ROOT, 'flags', name + '.flags')}"])
        if name == "gpu":
            assert FLAGS.augment_on == "device" and FLAGS.mixed_precision == "mixed_bfloat16"
        else:
            assert FLAGS.mode == "all" and FLAGS.baseline == "idg" and FLAGS.image_size == 150


def test_every_entry_point_imports_beside_the_others():
    """absl refuses a flag defined twice in one process: shared flags live in common_flags."""
    import importlib

    for name in ("train", "evaluate", "predict", "synthetic", "benchmark", "preview"):
        module = importlib.import_module(f"rps_tfdata.{name}")
        assert callable(module.run), name
