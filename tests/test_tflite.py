"""The TensorFlow Lite export, run by LiteRT's own interpreter (`ai-edge-litert`) on real
images: the same classes as predict, at each quantization."""

import json
import os

import numpy as np
import pytest

from rps_tfdata.pipeline.reading import listing
from rps_tfdata.serving import tflite
from rps_tfdata.trainer import artifacts, evaluation, inputs, loop

from .helpers import RPS28, decoded_pixels

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="needs ai-edge-litert")


@pytest.fixture(scope="module")
def real_pixels_and_predictions(finished_run):
    """The 60 bundled real images as the run reads them (uint8 at its size, resized by
    training's reader: the caller's job for a TFLite model), and predict's answers."""
    run = artifacts.load_run(finished_run[0])
    split = listing.list_all(RPS28)
    prepared = inputs.read(split.paths, split.labels, 3, run.options)
    pixels = decoded_pixels(prepared)
    expected, _ = evaluation.predict_all(
        loop.make_predict(run.model), inputs.evaluation_batches(prepared)
    )
    return run, pixels, expected


def interpret(flatbuffer: bytes, pixels: np.ndarray) -> np.ndarray:
    interpreter = litert.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner()
    return runner(pixels=pixels)["probabilities"]


@pytest.mark.parametrize("quantize, least", [("none", 0.99), ("float16", 0.95), ("dynamic", 0.9)])
def test_litert_gives_predicts_classes_at_each_quantization(
    real_pixels_and_predictions, quantize, least
):
    run, pixels, expected = real_pixels_and_predictions
    probabilities = interpret(tflite.convert(run, quantize), pixels)
    assert probabilities.shape == expected.shape
    agreement = float((probabilities.argmax(axis=1) == expected.argmax(axis=1)).mean())
    print(f"--tflite_quantize={quantize}: {agreement:.1%} of {len(pixels)} real images agree")
    assert agreement >= least
    if quantize == "none":
        np.testing.assert_allclose(probabilities, expected, atol=1e-4)


def test_the_tflite_folder_says_what_its_input_is(finished_run, tmp_path):
    run = artifacts.load_run(finished_run[0])
    path = tflite.write(run, str(tmp_path / "tflite"), "float16")
    with open(tmp_path / "tflite" / tflite.LABELS) as f:
        assert f.read().splitlines() == run.class_names
    with open(tmp_path / "tflite" / tflite.INPUT) as f:
        described = json.load(f)
    assert described["dtype"] == "uint8" and described["shape"] == [None, 48, 48, 3]
    assert described["quantize"] == "float16"
    details = litert.Interpreter(model_path=path).get_signature_runner().get_input_details()
    assert details["pixels"]["dtype"] == np.uint8
    assert sorted(os.listdir(tmp_path / "tflite")) == sorted(
        [tflite.MODEL, tflite.LABELS, tflite.INPUT]
    )
