"""The command-line entry points as a user runs them, and the named flagfiles."""

import glob
import importlib
import json
import os
import re
import shutil

import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from rps_tfdata import benchmark, train
from rps_tfdata.bench import pipeline_routes, seed_reference
from rps_tfdata.cli import configs, flag_defs
from rps_tfdata.trainer import artifacts
from rps_tfdata.trainer import config as config_lib

from .helpers import ROOT, module, run_python, small_run, small_run_flags

FLAGS = flags.FLAGS


def run_module(name, *args, env=None):
    return run_python(module(name, *args), env=env)


@pytest.fixture(scope="module")
def cli_run(synthetic_dir, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("cli_run"))
    result = run_module("train", *small_run_flags(synthetic_dir, model_dir, "--seed=7"))
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, result


@pytest.mark.slow
def test_train_prints_progress_and_a_summary(cli_run):
    model_dir, result = cli_run
    assert "epoch 1/1: loss " in result.stdout and "images/s)" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("val_accuracy=")
    assert os.path.isfile(os.path.join(model_dir, artifacts.FINAL_MODEL_FILE))


@pytest.mark.slow
def test_saved_flags_are_a_flagfile_that_repeats_the_run(cli_run, synthetic_dir):
    model_dir, _ = cli_run
    with flagsaver.flagsaver():
        FLAGS(["train", f"--flagfile={os.path.join(model_dir, artifacts.FLAGS_FILE)}"])
        config = train.make_config()
    assert (config.data_dir, config.model_dir) == (synthetic_dir, model_dir)
    assert (config.epochs, config.seed, config.image_size) == (1, 7, 48)


@pytest.mark.slow
def test_evaluate_prints_confusion_matrix_and_writes_json(cli_run, synthetic_dir, tmp_path):
    model_dir, _ = cli_run
    out = tmp_path / "eval.json"
    result = run_module(
        "evaluate", f"--model_dir={model_dir}", f"--data_dir={synthetic_dir}", f"--json={out}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accuracy:" in result.stdout and "scissors" in result.stdout
    assert '"confusion_matrix"' in out.read_text()


@pytest.mark.slow
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
    empty = os.path.join(os.path.dirname(model_dir), "empty.png")
    open(empty, "w").close()
    exported = os.path.join(model_dir, "export", "1")
    ranked = run_module(
        "predict", f"--saved_model={exported}", "--top_k=3", "--format=jsonl", rock, empty
    )
    assert ranked.returncode == 3, ranked.stderr[-3000:]  # a file was skipped
    *answers, skipped = [json.loads(line) for line in ranked.stdout.splitlines()]
    assert len(answers) == len(lines) and sorted(answers[0]["classes"]) == [
        "paper",
        "rock",
        "scissors",
    ]
    assert answers[0]["classes"][0] == name and answers[0]["probabilities"][0] == pytest.approx(
        float(probability), abs=1e-4
    )
    assert answers[0]["probabilities"] == sorted(answers[0]["probabilities"], reverse=True)
    assert skipped["path"] == empty and "skipped" in skipped


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--validation_split=0"], "--validation_split=0.0: the fraction of each class held out"),
        (["--data_dir=/nonexistent/rps"], "error: data folder '/nonexistent/rps' does not exist"),
    ],
)
def test_bad_input_gives_one_actionable_line_and_no_traceback(args, message, tmp_path):
    result = run_module("train", f"--model_dir={tmp_path}", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_evaluate_without_a_run_names_the_missing_file(tmp_path, synthetic_dir):
    result = run_module("evaluate", f"--model_dir={tmp_path}", f"--data_dir={synthetic_dir}")
    assert result.returncode == 1
    assert f"{tmp_path}/model.keras not found" in result.stderr
    assert "Traceback" not in result.stderr


def flagfile_jobs():
    """(flagfile, command) for each `./run.sh COMMAND --flagfile=flags/NAME.flags` that a
    flagfile's own header comment gives as its usage."""
    jobs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "flags", "*.flags"))):
        with open(path) as f:
            header = "".join(line for line in f if line.startswith("#"))
        name = os.path.basename(path)
        usage = rf"\./run\.sh ([\w-]+) [^\n]*--flagfile=flags/{re.escape(name)}"
        commands = [command.replace("-", "_") for command in re.findall(usage, header)]
        assert commands, f"{name}: its header comment shows no ./run.sh command using it"
        jobs += [(path, command) for command in sorted(set(commands))]
    return jobs


@pytest.mark.parametrize("path, command", flagfile_jobs(), ids=lambda v: os.path.basename(v))
def test_each_flagfile_is_a_valid_job_for_its_commands(path, command):
    """Every flag a flagfile sets is one its command reads, and the settings pass the
    same checks as a run (a renamed flag or a contradiction fails here, not after an hour)."""
    module = importlib.import_module(f"rps_tfdata.{command}")
    with open(path) as f:
        names = [re.match(r"--(\w+)", line).group(1) for line in f if line.startswith("--")]
    names = [name for name in names if name != "flagfile"]  # a nested flagfile: its own test
    read = vars(module._F)
    # A boolean flag may be set as --noNAME.
    unread = [n for n in names if n not in read and n.removeprefix("no") not in read]
    assert not unread, f"{command} does not read {unread}"
    with flagsaver.flagsaver():
        FLAGS([command, f"--flagfile={path}"])
        config = configs.training_config(module._F, data_dir="d", model_dir="m")
        config_lib.check_config(config)


def test_seed_flagfile_is_the_seed_script():
    with flagsaver.flagsaver():
        FLAGS(["train", f"--flagfile={os.path.join(ROOT, 'flags', 'seed.flags')}", "--data_dir=d"])
        config = train.make_config()
    assert config.image_size == 150 and config.batch_size == 32
    assert config.validation_split == seed_reference.SEED_VALIDATION_SPLIT
    assert (config.epochs, config.learning_rate) == (25, 0.001)
    assert config.augment == "idg" and config.augment_validation
    assert config.resize_method == "pil_nearest"  # IDG's flow_from_directory default


def test_benchmark_writes_every_figure_as_flat_json(synthetic_dir, tmp_path):
    out = tmp_path / "bench.json"
    with flagsaver.flagsaver(
        data_dir=synthetic_dir,
        image_size=48,
        batch_size=4,
        repeats=1,
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
    keys = ("pipeline_cold", "pipeline_steady", "idg_pipeline", "step", "e2e", "idg_e2e")
    for key in (*keys, "pipeline_fill", "decode_bare"):
        assert figures[f"{key}_images_per_sec"] > 0, key
        assert figures[f"{key}_images_per_sec_low"] <= figures[f"{key}_images_per_sec"]
    assert figures["pipeline_fill_vs_decode_bare"] == pytest.approx(
        figures["pipeline_fill_images_per_sec"] / figures["decode_bare_images_per_sec"]
    )
    assert figures["e2e_vs_step"] == pytest.approx(
        figures["e2e_images_per_sec"] / figures["step_images_per_sec"]
    )
    assert figures["tensorflow"] and figures["peak_rss_mb"] > 0


def test_each_pipeline_round_says_its_ratios_and_the_first_epochs_ceiling():
    """A round's line gives the ratios to Keras' route and the first epoch's ceiling:
    the bare decoder's time plus one later pass's (here 1/1000 + 1/9000 s an image)."""
    rates = {"keras_first_pass": 300, "decode_bare": 1000, "pipeline_fill": 900}
    rates |= {"pipeline_first_epoch": 600}
    samples = {name: [7.0, rate] for name, rate in rates.items()}
    samples |= {"keras_steady": [400, 500, 600], "pipeline_steady": [1, 9000, 9000]}
    line = pipeline_routes._round_line(samples, passes=2)
    assert "keras_steady 550, pipeline_steady 9000" in line
    assert "later passes 16.36x Keras', first epoch 2.00x" in line
    assert "(its ceiling 900 images/s, 3.00x); the read 0.90x the bare decoder" in line


def test_benchmark_times_the_first_batch_of_idgs_flow_and_the_drop_ins(synthetic_dir, tmp_path):
    out = tmp_path / "first.json"
    with flagsaver.flagsaver(
        data_dir=synthetic_dir,
        image_size=48,
        batch_size=4,
        repeats=2,
        mode="first_batch",
        json=str(out),
    ):
        benchmark.main(["benchmark"])
    figures = json.loads(out.read_text())
    files = sum(len(names) for _, _, names in os.walk(synthetic_dir))
    for name in ("idg", "dropin"):
        assert figures[f"{name}_files"] == files, name  # each flow found every file
        low, high = figures[f"{name}_first_batch_range_s"]
        assert 0 < low <= figures[f"{name}_first_batch_s"] <= high < 60, name
    assert figures["dropin_over_idg"] > 0 and figures["mode"] == "first_batch"


_ACCEPTS = """
import importlib, sys
from absl import flags
importlib.import_module("rps_tfdata." + sys.argv[1])
print(" ".join(name for name in sys.argv[2:] if name in flags.FLAGS))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "command, used, unused",
    [
        ("train", ["epochs", "image_cache", "download_dir"], ["out", "json", "per_class"]),
        ("evaluate", ["model_dir", "data_dir", "json"], ["image_size", "epochs", "seed"]),
        ("predict", ["model_dir", "batch_size"], ["image_size", "epochs", "seed", "data_dir"]),
    ],
)
def test_a_command_accepts_only_the_flags_it_reads(command, used, unused):
    """Checked in a fresh process: in this one every entry point's flags are defined."""
    result = run_python(["-c", _ACCEPTS, command, *used, *unused], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == used


@pytest.mark.slow
@pytest.mark.parametrize("command", ["preview", "benchmark"])
def test_measuring_tools_without_the_bench_extra_say_so_in_one_line(command):
    blocked = "import sys; sys.modules['PIL'] = sys.modules['scipy'] = None; "
    script = f"{blocked}sys.argv = ['rps-{command}']; from rps_tfdata.{command} import run; run()"
    result = run_python(["-c", script], timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: rps-{command} runs Keras' ImageDataGenerator, which needs PIL: "
        "pip install 'rps_tfdata[bench]'"
    )


def test_defining_a_flag_twice_returns_the_same_holder():
    """Entry points imported together (as here) share flags instead of redefining them."""
    assert flag_defs.define("epochs").epochs is flag_defs.define("epochs", "seed").epochs


_IMPORTS = """
import logging, os, sys
import numpy as np
from absl import logging as absl_logging

def state():
    return dict(os.environ), logging.getLogger("tensorflow").level, list(
        absl_logging.get_absl_logger().filters
    )

before = state()
import rps_tfdata.cli.command
for name in sys.argv[1:]:
    __import__("rps_tfdata." + name)
import rps_tfdata.trainer.synthetic_hands as hands
hands.draw_hand("rock", 32, np.random.default_rng(0))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
print(state() == before)
import keras, tensorflow  # what they change is theirs (with jax installed, tf.lite
before = state()          # imports it, and jax sets TF_CPP_MIN_LOG_LEVEL)
import rps_tfdata.trainer.training  # the library itself
print(state() == before)
"""


@pytest.mark.slow
def test_importing_the_package_changes_nothing_process_wide():
    """A notebook, a test or another program that imports the package finds the
    environment and the loggers as they were; the entry points, the error path and the
    synthetic hands' drawing import no TensorFlow (a command starts it, quietly, when it
    runs), and the library changes nothing beyond what TensorFlow and Keras change."""
    commands = ["train", "evaluate", "predict", "export", "synthetic", "data_service"]
    commands += ["benchmark", "preview", "gpu_check"]
    result = run_python(["-c", _IMPORTS, *commands], timeout=120, quiet=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:3] == ["[]", "True", "True"]


@pytest.mark.slow
def test_predict_prints_the_readable_images_and_names_the_others(cli_run, synthetic_dir, tmp_path):
    model_dir, _ = cli_run
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = os.path.join(synthetic_dir, "rock", "rock01-000.png")
    with open(good, "rb") as f:
        (folder / "a.png").write_bytes(f.read())
    (folder / "b.png").write_bytes(b"")
    result = run_module("predict", f"--model_dir={model_dir}", str(folder))
    assert result.returncode == 3  # finished, with something skipped
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(folder / "a.png")]
    assert f"skipped {folder / 'b.png'}: empty file" in result.stderr


@pytest.mark.slow
def test_evaluate_reports_skipped_images(cli_run, synthetic_dir, tmp_path):
    model_dir, _ = cli_run
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir, data)
    (data / "paper" / "paper00-bad.png").write_bytes(b"not an image")
    out = tmp_path / "eval.json"
    result = run_module(
        "evaluate", f"--model_dir={model_dir}", f"--data_dir={data}", f"--json={out}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(skipped unreadable: 1)" in result.stdout
    skipped = json.loads(out.read_text())["skipped_images"]
    assert skipped == [
        {
            "path": str(data / "paper" / "paper00-bad.png"),
            "reason": "not an image (unknown file signature)",
        }
    ]


@pytest.mark.slow
def test_train_checks_the_model_dir_before_downloading(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_module(
        "train", f"--model_dir={blocker}/run", "--base_url=http://127.0.0.1:9/nothing"
    )
    assert result.returncode == 1
    assert f"error: --model_dir={blocker}/run cannot be written" in result.stderr
    assert "download" not in result.stderr


def test_memory_benchmark_measures_the_training_split(synthetic_dir):
    from rps_tfdata.bench import measurements

    figures = measurements.measure_memory(measurements.subject_of(small_run(synthetic_dir, "")), 1)
    assert figures["images"] == 24 and figures["image_cache"] == "memory"
    assert figures["peak_rss_mb"] >= figures["rss_before_mb"] > 100


@pytest.mark.slow
def test_commands_start_quietly_unless_the_user_chose_a_log_level(tmp_path, synthetic_dir):
    """TensorFlow's start-up lines (oneDNN, CUDA stubs, ...) are dropped by default; the
    user's TF_CPP_MIN_LOG_LEVEL, or absl's --verbosity, brings them back."""
    command = module("evaluate", f"--model_dir={tmp_path}", f"--data_dir={synthetic_dir}")

    def stderr_of(args, env=None):
        run = run_python(args, env=env, timeout=300, quiet=False)
        assert run.returncode == 1  # no run in the folder: one line says so
        return run.stderr

    quiet = stderr_of(command)
    assert quiet.splitlines() == [
        f"error: {tmp_path}/model.keras not found: --model_dir must "
        "be the folder of a finished `python -m rps_tfdata.train` run"
    ]
    chatter = "All log messages before absl::InitializeLog() is called"
    assert chatter in stderr_of(command, {"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert chatter in stderr_of([*command, "--verbosity=0"])


@pytest.mark.slow
def test_every_command_takes_file_urls(tmp_path, synthetic_dir):
    data, run = f"file://{synthetic_dir}", f"file://{tmp_path}/run"
    trained = run_module("train", f"--data_dir={data}", f"--model_dir={run}", "--epochs=1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert os.path.isfile(tmp_path / "run" / "metrics.json")
    evaluated = run_module("evaluate", f"--model_dir={run}", f"--data_dir={data}")
    assert evaluated.returncode == 0 and "accuracy:" in evaluated.stdout
    predicted = run_module("predict", f"--model_dir={run}", f"{data}/rock")
    assert predicted.returncode == 0 and len(predicted.stdout.splitlines()) == 10
    exported = run_module(
        "export", f"--model_dir={run}", f"--out=file://{tmp_path}/served", "--tflite"
    )
    assert exported.returncode == 0 and os.path.isfile(tmp_path / "served" / "saved_model.pb")
    assert os.path.isfile(tmp_path / "run" / "tflite" / "model.tflite")
    assert "--tflite_quantize=none; input uint8 pixels [N, 150, 150, 3]" in exported.stdout


@pytest.mark.slow
def test_gpu_check_says_what_it_found_runs_every_check_and_exits_0(tmp_path):
    """The command a GPU's first user runs. Without a GPU (as on CI) it must say so in
    one line and still run every check on the CPU; with one, compare with the projection.
    Either way it ends with its report as JSON and exits 0."""
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    report_file = tmp_path / "report.json"
    flagfile = "flags/gpu_check.flags" if has_gpu else "flags/gpu_check_cpu.flags"
    run = run_python(
        module(
            "gpu_check",
            f"--flagfile={flagfile}",
            f"--download_dir={tmp_path}",
            f"--json={report_file}",
            "--per_class=40",
            "--epochs=1",
        ),
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("gpu-check: no GPU visible to TensorFlow") != has_gpu
    report = json.loads(lines[-1])
    assert report == json.loads(report_file.read_text())
    assert (report["gpu"] is not None) == has_gpu and report["augmentation_agrees"]
    assert sorted(report["trainings"]) == ["float32", "mixed_bfloat16", "mixed_float16"]
    assert {"pipeline_steady", "step", "e2e", "e2e_loop"} <= set(report["images_per_sec"])
    assert report["steps_per_loop"] == 16
    assert ("not compared" in run.stdout) != has_gpu
