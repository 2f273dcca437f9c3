"""The SavedModel that takes encoded images, loaded where this package cannot be imported."""

import json
import logging
import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from rps_tfdata.infra.errors import UserError
from rps_tfdata.serving import saved_model
from rps_tfdata.trainer import artifacts, evaluation, inputs, loop

from . import fuzz_corpus
from .helpers import RPS28, decoded_pixels, module, run_python, small_run, write_png

# Loads the export with the package made unimportable, and prints the signature's outputs.
SERVE = """
import json, sys
sys.modules["rps_tfdata"] = None
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
encoded = [open(path, "rb").read() for path in sys.argv[2:]]
out = serve(images=tf.constant(encoded))
print(json.dumps({key: value.numpy().tolist() for key, value in out.items()}, default=str))
"""


@pytest.fixture(scope="module")
def run_dir(finished_run):
    return finished_run[0]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Real images (28x28 RGBA PNGs) and the same hands as grey, 16-bit, JPEG, BMP, GIF."""
    folder = tmp_path_factory.mktemp("inputs")
    originals = [os.path.join(RPS28, c, f"{c}01-000.png") for c in ("paper", "rock", "scissors")]
    rgb = np.asarray(Image.open(originals[1]).convert("RGB"))
    variants = {
        "grey.png": Image.fromarray(rgb).convert("L"),
        "photo.jpg": Image.fromarray(rgb),
        "bitmap.bmp": Image.fromarray(rgb),
        "anim.gif": Image.fromarray(rgb),
    }
    paths = list(originals)
    for name, image in variants.items():
        image.save(folder / name)
        paths.append(str(folder / name))
    paths.append(write_png(str(folder / "deep.png"), rgb.astype(np.uint16) * 257))  # 16-bit
    return paths


# Serves one real image (tracing the signature), then the bombs; prints the outputs for
# the bombs and how much the peak RSS grew while serving them.
SERVE_BOMBS = """
import json, resource, sys
sys.modules["rps_tfdata"] = None
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
real, *bombs = [open(path, "rb").read() for path in sys.argv[2:]]
serve(images=tf.constant([real, real]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = serve(images=tf.constant(bombs))
grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"valid": out["valid"].numpy().tolist(), "grew_mib": grew}))
"""


def serve(export_dir, paths, script=SERVE):
    result = run_python(["-c", script, export_dir, *paths], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_export_serves_encoded_images_as_predict_reads_the_files(run_dir, samples, tmp_path):
    text = tmp_path / "notes.png"
    text.write_bytes(b"not an image")
    out = serve(saved_model.default_dir(run_dir), [*samples, str(text)])
    run = artifacts.load_run(run_dir)
    split = inputs.read(samples, [0] * len(samples), 3, run.options)
    assert split.prepared.paths == samples  # every variant is readable by training's reader
    expected, _ = evaluation.predict_all(
        loop.make_predict(run.model), inputs.evaluation_batches(split)
    )
    probabilities = np.array(out["probabilities"])
    np.testing.assert_allclose(probabilities[:-1], expected, atol=1e-5)
    names = [run.class_names[k] for k in expected.argmax(axis=1)]
    assert out["classes"][:-1] == [f"b'{n}'" for n in names]
    assert out["valid"] == [True] * len(samples) + [False]
    assert out["classes"][-1] == "b''" and probabilities[-1].tolist() == [0.0, 0.0, 0.0]


# Sends decoded pixels (a .npy file) to the images_uint8 signature, without the package.
SERVE_PIXELS = """
import json, sys
sys.modules["rps_tfdata"] = None
import numpy as np
import tensorflow as tf
classify = tf.saved_model.load(sys.argv[1]).signatures["images_uint8"]
out = classify(pixels=tf.constant(np.load(sys.argv[2])))
print(json.dumps({key: value.numpy().tolist() for key, value in out.items()}, default=str))
"""


@pytest.mark.slow
def test_the_export_classifies_decoded_pixels_as_predict_does(run_dir, samples, tmp_path):
    run = artifacts.load_run(run_dir)
    split = inputs.read(samples, [0] * len(samples), 3, run.options)
    batches = inputs.evaluation_batches(split)
    np.save(tmp_path / "pixels.npy", decoded_pixels(split))
    out = serve(saved_model.default_dir(run_dir), [str(tmp_path / "pixels.npy")], SERVE_PIXELS)
    expected, _ = evaluation.predict_all(loop.make_predict(run.model), batches)
    np.testing.assert_allclose(np.array(out["probabilities"]), expected, atol=1e-5)
    names = [run.class_names[k] for k in expected.argmax(axis=1)]
    assert out["classes"] == [f"b'{n}'" for n in names]


# Replays the export's TF Serving warmup file as TF Serving does, without the package.
REPLAY_WARMUP = """
import json, os, sys
sys.modules["rps_tfdata"] = None
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
export = sys.argv[1]
warmup = os.path.join(export, "assets.extra", "tf_serving_warmup_requests")
records = tf.data.TFRecordDataset(warmup)
logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
request = logs[0].predict_log.request
serve = tf.saved_model.load(export).signatures[request.model_spec.signature_name]
out = serve(**{name: tf.make_ndarray(t) for name, t in request.inputs.items()})
print(json.dumps({"records": len(logs), "valid": out["valid"].numpy().tolist()}))
"""


@pytest.mark.slow
def test_the_export_carries_a_warmup_request_tf_serving_can_replay(run_dir):
    pytest.importorskip("tensorflow_serving", reason="needs tensorflow-serving-api")
    assert serve(saved_model.default_dir(run_dir), [], REPLAY_WARMUP) == {
        "records": 1,
        "valid": [True],
    }


@pytest.mark.slow
def test_predict_on_the_export_prints_what_predict_on_the_run_prints(run_dir, samples):
    def predict(*flags):
        result = run_python(module("predict", *flags, *samples[:3]), timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.splitlines()

    assert predict(f"--saved_model={saved_model.default_dir(run_dir)}") == predict(
        f"--model_dir={run_dir}"
    )


def test_export_replaces_its_own_folder_and_refuses_another(copy_of_finished_run, tmp_path):
    finished = artifacts.load_run(copy_of_finished_run)
    out = saved_model.default_dir(copy_of_finished_run)  # the run's own export
    first = os.stat(os.path.join(out, "saved_model.pb")).st_ino
    saved_model.write(finished, out)
    assert os.stat(os.path.join(out, "saved_model.pb")).st_ino != first  # a new one
    assert os.listdir(os.path.dirname(out)) == ["1"]  # no staging left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    with pytest.raises(UserError, match="was not written by rps_tfdata"):
        saved_model.write(finished, str(foreign))
    shutil.rmtree(foreign)


def test_an_export_without_class_names_is_named_and_a_missing_warmup_package_said(
    run_dir, samples, tmp_path, monkeypatch, caplog
):
    """An export written before the class names were in it (only its serving signature),
    and an export written where tensorflow-serving-api is not installed."""
    import keras
    import tensorflow as tf

    from rps_tfdata.infra.errors import InputNotFoundError
    from rps_tfdata.serving import predictions

    run = artifacts.load_run(run_dir)
    archive = keras.export.ExportArchive()
    archive.track(run.model)
    serve = saved_model.make_serving_fn(run.model, run.class_names, (48, 48), "pil_nearest")
    archive.add_endpoint("serving_default", serve, [tf.TensorSpec([None], tf.string)])
    archive.write_out(str(tmp_path / "old"), verbose=False)
    with pytest.raises(InputNotFoundError, match="holds no class names .*export the run again"):
        predictions.classify_exported(str(tmp_path / "old"), samples[:1])
    for name in ("tensorflow_serving", "tensorflow_serving.apis"):  # as if not installed
        monkeypatch.setitem(sys.modules, name, None)
    with caplog.at_level(logging.INFO, logger="absl"):
        assert not saved_model.write_warmup(str(tmp_path / "bare"), (48, 48))
    assert "it needs tensorflow-serving-api" in caplog.text
    assert not os.path.exists(tmp_path / "bare" / saved_model.WARMUP_FILE)


def test_the_serving_benchmark_times_the_signature_and_the_predict_path(tmp_path):
    from rps_tfdata.bench import measurements

    subject = measurements.subject_of(small_run(RPS28, tmp_path / "scratch"))
    results = measurements.measure_serving(subject, measurements.Settings(repeats=1))
    assert sorted(results) == ["predict_files", "serving_signature"]
    assert all(rate.median > 0 for rate in results.values())
    assert os.path.isfile(tmp_path / "scratch" / "export" / "saved_model.pb")


@pytest.mark.slow
def test_the_export_refuses_decompression_bombs_without_decoding_them(run_dir, samples, tmp_path):
    """A 30,000 x 30,000 PNG (2.7 GB of pixels once decoded) and a GIF whose 100 frames
    of 1,000 x 1,000 its decoder would inflate in full: valid=false, memory flat."""
    png_bomb = tmp_path / "bomb.png"
    png_bomb.write_bytes(fuzz_corpus.with_png_size(open(samples[0], "rb").read(), 30_000, 30_000))
    gif_bomb = tmp_path / "bomb.gif"
    gif_bomb.write_bytes(fuzz_corpus.gif_bomb(frames=100, side=1000))
    out = serve(
        saved_model.default_dir(run_dir), [samples[0], str(png_bomb), str(gif_bomb)], SERVE_BOMBS
    )
    assert out["valid"] == [False, False]
    assert out["grew_mib"] < 100  # decoding either would take gigabytes
