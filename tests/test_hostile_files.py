"""What real folders hold: damaged, enormous, misnamed and odd files, junk folders, links
that lead nowhere. Each file is used or named with its reason, through every command;
never a traceback, never a hang."""

import os
import shutil

import pytest
import tensorflow as tf
from absl import logging

from rps_tfdata.infra import fs
from rps_tfdata.infra.errors import DatasetLayoutError
from rps_tfdata.pipeline import options as options_lib
from rps_tfdata.pipeline.reading import decode, file_facts, headers, listing
from rps_tfdata.serving import predictions as served
from rps_tfdata.trainer import (
    artifacts,
    datasets,
    evaluation,
    inputs,
    plan,
    synthetic_hands,
    training,
)
from rps_tfdata.trainer.distribution import Worker

from .fuzz_corpus import USED, write_corpus
from .helpers import module, run_python, small_run


def check_outcomes(expected, used, bad):
    """Every corpus file used or named with its reason; nothing else, nothing twice."""
    outcomes = {os.path.basename(path): USED for path in used}
    for item in bad:
        name = os.path.basename(item.path)
        assert name not in outcomes, f"{fs.printable(name)} reported twice"
        outcomes[name] = item.reason
    for name, expectation in expected.items():
        got = outcomes.pop(name, "neither used nor named")
        wanted = got == USED if expectation == USED else expectation in got
        assert wanted, f"{fs.printable(name)}: expected {expectation!r}, got {got!r}"
    assert not outcomes, f"files outside the corpus: {sorted(outcomes)}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Synthetic hands, 8 per class, with the whole corpus in `rock/corpus/`."""
    root = str(tmp_path_factory.mktemp("hostile"))
    synthetic_hands.write_dataset(root, 8, size=40, seed=6)
    expected = write_corpus(os.path.join(root, "rock", "corpus"))
    return root, expected


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    """One epoch on the data with the corpus in it."""
    root, _ = corpus
    model_dir = str(tmp_path_factory.mktemp("hostile_run"))
    return model_dir, training.train_and_evaluate(small_run(root, model_dir))


def test_the_screen_and_the_serving_graph_count_the_same_pixels(corpus):
    """The pixel limit's two readers of headers: Python before any decode of a file, the
    graph in the exported model (where no Python runs)."""
    root, expected = corpus
    folder = os.path.join(root, "rock", "corpus")
    compared = 0
    for name, expectation in expected.items():
        if expectation not in (USED, "too many pixels", "not an image", "empty file"):
            continue  # truncated and corrupt files: the screen stops them before sizes count
        with open(os.path.join(os.fsencode(folder), os.fsencode(name)), "rb") as f:
            data = f.read()
        graph = int(decode.decoded_pixels(tf.constant(data)))
        assert (headers.pixels(data) or 0) == graph, fs.printable(name)
        compared += 1
    assert compared >= 18


def test_every_corpus_file_is_read_or_named_by_the_pipeline(corpus):
    root, expected = corpus
    listed = list(listing.iter_image_files(os.path.join(root, "rock", "corpus")))
    prepared = inputs.read(listed, [0] * len(listed), 3, options_lib.PipelineOptions())
    check_outcomes(expected, prepared.prepared.paths, prepared.prepared.bad)


def test_training_uses_or_names_every_corpus_file(corpus, trained):
    root, expected = corpus
    _, metrics = trained
    assert metrics["finished"] and metrics["class_names"] == ["paper", "rock", "scissors"]
    skipped = metrics["skipped_images"]
    named = {os.path.basename(record["path"]) for record in skipped}
    bad = {fs.printable(n) for n, e in expected.items() if e != USED}
    assert named == bad  # metrics.json names them readably (one line each, no raw bytes)
    used = len(expected) - len(bad)
    assert metrics["num_train_images"] + metrics["num_validation_images"] == 24 + used


def test_evaluate_uses_or_names_every_corpus_file(corpus, trained):
    root, expected = corpus
    model_dir, _ = trained
    result = evaluation.evaluate_folder(artifacts.load_run(model_dir), root)
    bad = {fs.printable(n) for n, e in expected.items() if e != USED}
    assert {os.path.basename(r["path"]) for r in result["skipped_images"]} == bad
    assert result["num_images"] == 24 + len(expected) - len(bad)


def test_the_exported_model_uses_or_names_every_corpus_file(corpus, trained):
    root, expected = corpus
    model_dir, _ = trained
    paths = served.expand_paths([os.path.join(root, "rock", "corpus")])
    predictions = served.classify_exported(
        os.path.join(model_dir, "export", "1"), paths, batch_size=8
    )
    check_outcomes(expected, [row[0] for row in predictions.rows], predictions.bad)


@pytest.mark.slow
def test_predict_names_each_odd_file_on_one_line_without_a_traceback(corpus, trained):
    root, expected = corpus
    model_dir, _ = trained
    folder = os.path.join(root, "rock", "corpus")
    odd = [os.path.join(folder, n) for n in ("fifo.png", "dangling.png", "folder.png")]
    result = run_python(module("predict", f"--model_dir={model_dir}", folder, *odd), timeout=300)
    stdout, stderr = result.stdout, result.stderr
    assert result.returncode == 3, stderr[-3000:]  # some files were skipped
    assert "Traceback" not in stderr
    rows = stdout.splitlines()
    assert len(rows) == sum(e == USED for e in expected.values())
    assert all(len(row.split("\t")) == 3 for row in rows)  # a newline in a name stays escaped
    assert any(row.startswith(os.path.join(folder, "caf\\xe9.png\t")) for row in rows)
    assert any(row.startswith(os.path.join(folder, "name with\\nnewline.png\t")) for row in rows)
    skipped = [line for line in stderr.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2 + sum(e != USED for e in expected.values())  # fifo, dangling again
    assert f"skipped {os.path.join(folder, 'fifo.png')}: not a regular file" in stderr


def macos_zip_layout(root):
    """What unzipping a folder zipped on macOS gives: AppleDouble files in __MACOSX."""
    synthetic_hands.write_dataset(root, 8, size=40, seed=7)
    for name in ("paper", "rock", "scissors"):
        junk = os.path.join(root, "__MACOSX", name)
        os.makedirs(junk)
        for image in os.listdir(os.path.join(root, name)):
            with open(os.path.join(junk, f"._{image}"), "wb") as f:
                f.write(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")


def test_a_macos_junk_folder_is_left_out_with_one_log_line(tmp_path, monkeypatch):
    root = str(tmp_path / "data")
    macos_zip_layout(root)
    said = []
    monkeypatch.setattr(logging, "info", lambda message, *args: said.append(message % args))
    config = small_run(root, tmp_path / "run")
    source = datasets.open_source(config)
    source.image_counts(Worker())  # the plan's count lists nothing twice
    data = source.load(Worker(), plan.input_options(config))
    assert data.class_names == ["paper", "rock", "scissors"]  # paper is still 0
    assert [line for line in said if "__MACOSX" in line] == [
        f"left out {os.path.join(root, '__MACOSX')}: an archiver's folder, not a class"
    ]
    assert listing.list_all(root).class_names == ["paper", "rock", "scissors"]


@pytest.mark.parametrize("content", [None, b"notes, not pixels"])
def test_a_class_folder_without_a_readable_image_stops_the_run_naming_it(tmp_path, content):
    root = str(tmp_path / "data")
    synthetic_hands.write_dataset(root, 8, size=40, seed=8)
    os.makedirs(os.path.join(root, "drafts"))
    if content is not None:
        for k in range(5):
            with open(os.path.join(root, "drafts", f"page{k}.png"), "wb") as f:
                f.write(content)
    with pytest.raises(DatasetLayoutError, match="class folder .*drafts' holds no readable image"):
        training.train_and_evaluate(small_run(root, tmp_path / "run"))
    assert not os.path.exists(os.path.join(tmp_path, "run", artifacts.CHECKPOINTS_FOLDER))


def test_links_and_odd_names_do_not_stop_the_run_fingerprint(corpus):
    root, _ = corpus
    listed = listing.list_all(root).paths

    def fingerprint(paths):
        return file_facts.fingerprint(paths, file_facts.gather(paths, "")[0])

    assert fingerprint(listed) == fingerprint(listed)  # no dead link's stat fails
    moved = shutil.copy(listed[0], listed[0] + ".copy.png")
    try:
        assert fingerprint(listing.list_all(root).paths) != fingerprint(listed)
    finally:
        os.remove(moved)
