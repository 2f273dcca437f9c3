"""A long read says how far it is (`progress.Progress`), through the trainer's log and
the drop-in's print; a short one says nothing, so a small flow's output stays IDG's."""

import os
import re
import time

import numpy as np
import pytest

from rps_tfdata.image import ImageDataGenerator
from rps_tfdata.infra import fs
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import file_facts, prepare, progress

from .helpers import corrupt_png, write_png


def noise_pngs(paths: list[str], seed: int) -> list[str]:
    """A small PNG of noise at each of `paths`."""
    rng = np.random.default_rng(seed)
    return [write_png(p, rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)) for p in paths]


def test_a_read_past_the_interval_says_its_count_share_rate_and_end(monkeypatch):
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    lines = []
    reading = progress.Progress("Reading 200 images into memory", 200, lines.append)
    reading.update(64)
    reading.update(128)
    reading.update(200)  # the end is said by finish, once
    reading.finish(200)
    assert len(lines) == 3
    assert lines[0].startswith("Reading 200 images into memory: 64 of 200 (32%), ")
    rate, left = re.search(r", ([\d,]+) images/s, about ([\d,]+) s to go$", lines[0]).groups()
    assert int(rate.replace(",", "")) > 0 and int(left.replace(",", "")) >= 0
    assert lines[1].startswith("Reading 200 images into memory: 128 of 200 (64%)")
    assert lines[2].startswith("Reading 200 images into memory: done, 200 images in ")


def test_a_read_within_the_interval_says_nothing():
    lines = []
    reading = progress.Progress("Reading 200 images into memory", 200, lines.append)
    reading.update(64)
    reading.finish(200)
    assert lines == []


def test_every_cache_reports_its_read_where_the_caller_says(monkeypatch, tmp_path):
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    paths = noise_pngs([str(tmp_path / f"{i}.png") for i in range(70)], seed=0)
    said = {}
    for cache in ("memory", "disk", "none"):
        options = PipelineOptions(
            image_size=(4, 4), batch_size=8, cache=cache, cache_path=str(tmp_path / "cache")
        )
        lines = said[cache] = []
        prepared = prepare.prepare(paths, options, say=lines.append)
        assert prepared.count == 70
    assert said["memory"][0].startswith("Reading 70 images into memory: 64 of 70 (91%)")
    assert said["disk"][0].startswith(f"Reading 70 images into {tmp_path / 'cache'}")
    assert said["none"][0].startswith("Checking 70 images by decoding them: 64 of 70")
    assert all(
        lines[-1].split(": ")[1].startswith("done, 70 images in ") for lines in said.values()
    )


def test_a_read_counts_the_files_it_tried_and_ends_with_those_it_read(monkeypatch, tmp_path):
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    paths = noise_pngs([str(tmp_path / f"{i:02}.png") for i in range(70)], seed=2)
    with open(paths[3], "wb") as f:  # passes the header screen, fails the decode
        f.write(corrupt_png())
    lines = []
    options = PipelineOptions(image_size=(4, 4), batch_size=8, cache="memory")
    prepared = prepare.prepare(paths, options, say=lines.append)
    assert prepared.count == 69
    # The first 64 images read took 65 files: the count is of files tried.
    assert lines[0].startswith("Reading 70 images into memory: 65 of 70")
    assert lines[-1].startswith("Reading 70 images into memory: done, 69 images in ")


def test_a_flows_long_read_prints_beside_idgs_found_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    noise_pngs([str(tmp_path / f"class{k % 3}" / f"{k}.png") for k in range(72)], seed=1)
    cache_dir = str(tmp_path / "cache")
    ImageDataGenerator().flow_from_directory(
        str(tmp_path), target_size=(4, 4), cache="disk", cache_dir=cache_dir
    )
    out = capsys.readouterr().out.splitlines()
    where = os.path.join(cache_dir, "all-")
    assert out[0].startswith(f"Reading 72 images into {where}") and ": 64 of 72 (89%)" in out[0]
    assert (
        out[1].startswith(f"Reading 72 images into {where}") and ": done, 72 images in " in out[1]
    )
    assert out[2:] == ["Found 72 images belonging to 3 classes."]


def test_a_call_on_every_file_reports_its_count_every_so_often_and_at_the_end(monkeypatch):
    """Local paths one after another, remote ones many at once: the same results, in
    order, and the count reported every PROGRESS_EVERY calls and at the end."""
    monkeypatch.setattr(fs, "PROGRESS_EVERY", 10)
    for root in ("data/", "gs://bucket/"):
        for count, reports in ((25, [10, 20, 25]), (20, [10, 20]), (0, [0])):
            paths = [f"{root}{'x' * k}" for k in range(count)]
            counts = []
            assert fs.for_each(len, paths, counts.append) == [len(p) for p in paths]
            assert counts == reports


def test_an_error_in_a_remote_call_on_every_file_cancels_the_calls_not_started(monkeypatch):
    """A million remote files: an error (here in reporting, as a broken pipe would be)
    must not wait for the calls queued behind it."""
    monkeypatch.setattr(fs, "PROGRESS_EVERY", 10)
    started = []

    def call(path: str) -> str:
        started.append(path)
        time.sleep(0.02)
        return path

    def report(count: int) -> None:
        raise BrokenPipeError("stdout closed")

    paths = [f"gs://bucket/{k}" for k in range(20 * fs.REMOTE_REQUESTS)]
    with pytest.raises(BrokenPipeError):
        fs.for_each(call, paths, report)
    assert len(started) < len(paths) / 2


def test_a_flows_stat_of_every_file_says_how_far_it_is(monkeypatch, capsys, tmp_path):
    """The drop-in's one call per file before it returns (a stat, where a bucket takes
    minutes for a million files) prints as a read does, before IDG's found line."""
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    monkeypatch.setattr(fs, "PROGRESS_EVERY", 16)
    noise_pngs([str(tmp_path / f"class{k % 2}" / f"{k}.png") for k in range(40)], seed=3)
    ImageDataGenerator().flow_from_directory(str(tmp_path), target_size=(4, 4))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Checking 40 files (a stat each): 16 of 40 (40%), ")
    assert re.search(r", [\d,]+ files/s, about [\d,]+ s to go$", out[0])
    assert out[1].startswith("Checking 40 files (a stat each): 32 of 40 (80%), ")
    assert out[2].startswith("Checking 40 files (a stat each): done, 40 files in ")
    assert out[3:] == ["Found 40 images belonging to 2 classes."]


def test_the_trainers_read_of_every_files_facts_says_how_far_it_is(monkeypatch, tmp_path):
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    monkeypatch.setattr(fs, "PROGRESS_EVERY", 16)
    paths = noise_pngs([str(tmp_path / f"{i:02}.png") for i in range(20)], seed=4)
    lines = []
    facts, indexed = file_facts.gather(paths, str(tmp_path / "run"), say=lines.append)
    assert facts == [file_facts.read_one(p) for p in paths] and not indexed
    assert lines[0].startswith("Reading the stats and headers of 20 files: 16 of 20 (80%)")
    assert lines[1].startswith("Reading the stats and headers of 20 files: done, 20 files in ")
    assert len(lines) == 2


def test_a_frames_check_of_its_files_and_a_header_screen_say_how_far_they_are(
    monkeypatch, capsys, tmp_path
):
    """`flow_from_dataframe`'s check that each named file is there (IDG's
    `validate_filenames`) and `headers.screen` (the predict command's) print as a read."""
    import pandas as pd

    from rps_tfdata.pipeline.reading import headers

    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    monkeypatch.setattr(fs, "PROGRESS_EVERY", 16)
    paths = noise_pngs([str(tmp_path / f"{k:02}.png") for k in range(20)], seed=5)
    frame = pd.DataFrame(
        {"filename": [os.path.basename(p) for p in paths], "class": ["a", "b"] * 10}
    )
    ImageDataGenerator().flow_from_dataframe(frame, str(tmp_path), target_size=(4, 4))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Checking the 20 files the frame names: 16 of 20 (80%), ")
    assert out[1].startswith("Checking the 20 files the frame names: done, 20 files in ")
    assert out[-1] == "Found 20 validated image filenames belonging to 2 classes."
    lines = []
    positions, bad = headers.screen(paths, say=lines.append)
    assert positions == list(range(20)) and not bad
    assert lines[0].startswith("Reading the headers of 20 files: 16 of 20 (80%), ")
    assert lines[1].startswith("Reading the headers of 20 files: done, 20 files in ")
