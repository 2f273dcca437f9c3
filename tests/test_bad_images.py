"""Unreadable image files: named with their reason, left out, or the run stopped early."""

import csv
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from rps_tfdata.infra.errors import BadImagesError, DatasetLayoutError
from rps_tfdata.pipeline import options as options_lib
from rps_tfdata.pipeline.reading import headers, listing
from rps_tfdata.trainer import datasets, inputs, plan, synthetic_hands, training

from .helpers import bomb_png, corrupt_png, png_bytes, small_run, write_png

BAD_FILES = {
    "empty.png": (b"", "empty file"),
    "truncated.png": (png_bytes()[:150], "truncated"),
    "text.png": (b"just some text, not pixels", "not an image"),
    "headers.tif": (b"II*\x00" + bytes(64), "unsupported format (TIFF"),
    "photo.ppm": (b"P6\n2 2\n255\n" + bytes(12), "unsupported format (PPM"),
    "bomb.png": (bomb_png(), "too many pixels"),
    "corrupt.png": (corrupt_png(), "corrupt image data"),
}


@pytest.fixture()
def data_with_bad_files(tmp_path):
    """Synthetic hands, 10 per class, plus one of each kind of bad file in `rock/`."""
    root = tmp_path / "data"
    synthetic_hands.write_dataset(str(root), 10, size=48, seed=4)
    for name, (content, _) in BAD_FILES.items():
        (root / "rock" / f"rock00-{name}").write_bytes(content)
    return str(root)


def test_each_kind_of_bad_file_is_found_with_its_reason(data_with_bad_files):
    split = listing.list_all(data_with_bad_files)
    options = options_lib.PipelineOptions(image_size=(48, 48), batch_size=8)
    prepared = inputs.read(split.paths, split.labels, 3, options)
    reasons = {
        os.path.basename(b.path).removeprefix("rock00-"): b.reason for b in prepared.prepared.bad
    }
    assert set(reasons) == set(BAD_FILES)
    for name, (_, reason) in BAD_FILES.items():
        assert reasons[name].startswith(reason), (name, reasons[name])
    kept = prepared.prepared
    assert len(kept.paths) == 30 and not set(kept.paths) & {b.path for b in kept.bad}


@pytest.mark.parametrize("cache", options_lib.CACHE_MODES)
def test_bad_files_leave_their_subset_and_the_rest_keeps_idgs_split(
    data_with_bad_files, tmp_path, cache
):
    config = small_run(data_with_bad_files, tmp_path / "run", image_cache=cache)
    source = datasets.open_source(config)
    run_plan = plan.make_plan(config, image_counts=source.image_counts)
    data = source.load(run_plan.worker, run_plan.input)
    skipped = {os.path.basename(b.path).removeprefix("rock00-") for b in data.skipped()}
    assert skipped == set(BAD_FILES)
    # IDG splits the listing with the bad files in it; they then leave their subset.
    failed = {b.path for b in data.skipped()}
    for subset, split in (("training", data.train), ("validation", data.validation)):
        listed = listing.list_split(data_with_bad_files, 0.2, subset).paths
        assert split.prepared.paths == [p for p in listed if p not in failed]
    # rock lists 17 files: its validation is the first int(0.2 * 17) = 3 in IDG's order,
    # rock00-bomb, -corrupt and -empty: all bad, so validation is paper's 2 and scissors' 2.
    assert data.validation.prepared.count == 4
    assert data.train.prepared.count == 8 + 8 + 10


def test_fail_policy_stops_before_training_listing_every_file(data_with_bad_files, tmp_path):
    config = small_run(data_with_bad_files, tmp_path / "run", on_bad_image="fail")
    with pytest.raises(BadImagesError, match="7 of 37 image files cannot be read") as caught:
        training.train_and_evaluate(config)
    for name in BAD_FILES:
        assert f"rock00-{name}" in str(caught.value)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")  # no step was taken


def test_fuzzed_files_never_crash_the_pipeline(tmp_path):
    """Random bytes and random truncations of real PNGs and JPEGs, under image names."""
    rng = np.random.default_rng(0)
    real = [png_bytes(seed=k, size=(20 + k, 30)) for k in range(4)]
    real.append(tf.io.encode_jpeg(np.full((16, 16, 3), 90, np.uint8)).numpy())
    paths = []
    for k in range(40):
        if k % 2:
            source = real[k % len(real)]
            content = source[: int(rng.integers(0, len(source)))]
        else:
            content = rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes()
        path = tmp_path / f"fuzz{k:02d}.{'png' if k % 3 else 'jpg'}"
        path.write_bytes(content)
        paths.append(str(path))
    paths.append(write_png(str(tmp_path / "good.png"), np.zeros((9, 9, 3), np.uint8)))
    options = options_lib.PipelineOptions(image_size=(8, 8), batch_size=4)
    prepared = inputs.read(paths, [0] * len(paths), 3, options)
    kept = prepared.prepared
    assert str(tmp_path / "good.png") in kept.paths
    assert len(kept.paths) + len(kept.bad) == len(paths)
    assert all(b.reason for b in kept.bad)
    for _ in inputs.evaluation_batches(prepared):  # what was kept decodes
        pass


def test_a_test_folder_without_readable_images_fails_before_training(tmp_path, synthetic_dir):
    test_dir = tmp_path / "test"
    for name in synthetic_hands.CLASS_NAMES:
        (test_dir / name).mkdir(parents=True)
    (test_dir / "rock" / "x.png").write_bytes(b"")
    config = small_run(synthetic_dir, tmp_path / "run", test_dir=str(test_dir))
    with pytest.raises(DatasetLayoutError, match="test folder .* holds no readable image"):
        training.train_and_evaluate(config)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_one_class_is_refused(tmp_path):
    synthetic_hands.write_dataset(str(tmp_path / "data"), 5, size=48)
    for name in ("paper", "scissors"):
        for path in (tmp_path / "data" / name).iterdir():
            path.unlink()
        (tmp_path / "data" / name).rmdir()
    config = small_run(tmp_path / "data", tmp_path / "r")
    with pytest.raises(
        DatasetLayoutError, match=r"1 class folder\(s\) \['rock'\]; .* at least two"
    ):
        training.train_and_evaluate(config)


def test_header_checks_read_no_more_than_the_ends_of_a_file(tmp_path):
    """A file's reason comes from its first 64 KiB and last bytes: a long file with a
    valid start and end passes the header check and is left to the decoder."""
    data = png_bytes()
    path = tmp_path / "long.png"
    path.write_bytes(data[:-12] + bytes(200_000) + data[-12:])
    assert headers.inspect_header(str(path)) is None


def numbered_split(folder, count, corrupt):
    """`count` 8x8 PNGs whose pixels equal their number (labels number % 3), the files
    numbered in `corrupt` replaced by ones whose header passes the screen but whose data
    does not decode."""
    paths = [
        write_png(str(folder / f"{i:02d}.png"), np.full((8, 8, 3), i, np.uint8))
        for i in range(count)
    ]
    for number in corrupt:
        (folder / f"{number:02d}.png").write_bytes(corrupt_png())
    return paths, [i % 3 for i in range(count)]


def by_id(batches):
    """{image id: (pixels, label)} over `batches`."""
    found = {}
    for images, labels, seeds in batches:
        for image, label, seed in zip(images.numpy(), labels.numpy(), seeds.numpy(), strict=True):
            found[int(seed[1]) % (1 << 32)] = (image, label)
    return found


def test_a_file_the_epochs_cannot_decode_keeps_its_place_with_no_label(tmp_path, capfd):
    """With the decode left to the epochs (cache none), the screen passes a file whose data
    is corrupt; the epoch then gives its place a blank with no label and names it, and
    every other image, the order and a resumed epoch are what they would have been."""
    paths, labels = numbered_split(tmp_path, 12, corrupt=[5])
    options = options_lib.PipelineOptions(image_size=(8, 8), batch_size=4, cache="none")
    prepared = inputs.read(paths, labels, 3, options, decode=False)
    kept = prepared.prepared
    assert not kept.decoded and kept.bad == [] and len(kept.paths) == 12
    whole = list(inputs.training_batches(prepared, seed=1))
    assert [len(x) for x, _, _ in whole] == [4, 4, 4] and whole[0][0].dtype == tf.uint8
    found = by_id(whole)
    assert sorted(found) == list(range(12))
    for image_id, (image, label) in found.items():
        if image_id == 5:
            assert not image.any() and not label.any()
        else:
            assert (image == image_id).all() and label.argmax() == image_id % 3
    assert f"unreadable image {paths[5]}" in capfd.readouterr().err
    # The tf.data service's epoch (each worker catches image by image): the same places.
    served = by_id(inputs.epoch_batches(prepared, 0, seed=1))
    for image_id, (image, label) in found.items():
        np.testing.assert_array_equal(served[image_id][0], image)
        np.testing.assert_array_equal(served[image_id][1], label)
    assert f"unreadable image {paths[5]}" in capfd.readouterr().err
    resumed = list(inputs.training_batches(prepared, seed=1, skip_batches=1))
    for (a, b, c), (x, y, z) in zip(whole[1:], resumed, strict=True):
        for mine, theirs in ((a, x), (b, y), (c, z)):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    checked = inputs.read(paths, labels, 3, options)  # decoded now: found and left out
    assert checked.prepared.bad == [headers.BadImage(paths[5], headers.CORRUPT)]


def test_a_run_names_every_unreadable_file_and_trains_on_past_undecodable_ones(
    data_with_bad_files, tmp_path, capfd, caplog
):
    """With the epochs decoding (cache none), a training file whose header passes but
    whose data does not decode is met by each epoch: the run trains on, says so, and
    names it in metrics.json with the files the first read left out."""
    root = data_with_bad_files
    corrupt = os.path.join(root, "rock", "zz-corrupt.png")  # last: a training file
    with open(corrupt, "wb") as f:
        f.write(corrupt_png())
    config = small_run(root, tmp_path / "run", image_cache="none", epochs=2)
    metrics = training.train_and_evaluate(config)
    # rock's 18 files: validation the first 3 (all bad), training 4 bad, 10 good, 1 corrupt
    # (not counted: no epoch could decode it).
    assert metrics["finished"] and metrics["num_train_images"] == 10 + 8 + 8
    assert capfd.readouterr().err.count("zz-corrupt.png") == 2  # named in each epoch
    warnings = [r.getMessage() for r in caplog.records if "could not be decoded" in r.getMessage()]
    assert len(warnings) == 2 and all("1 training image(s)" in w for w in warnings)
    # Named in metrics.json after the run (one decode pass, because an epoch met one).
    named = {os.path.basename(r["path"]): r["reason"] for r in metrics["skipped_images"]}
    assert named.pop("zz-corrupt.png") == headers.CORRUPT
    assert {name.removeprefix("rock00-") for name in named} == set(BAD_FILES)
    with open(tmp_path / "run" / "history.csv") as f:
        assert [row["unreadable_images"] for row in csv.DictReader(f)] == ["1", "1"]
    failing = config._replace(model_dir=str(tmp_path / "strict"), on_bad_image="fail")
    with pytest.raises(BadImagesError, match="zz-corrupt.png: corrupt image data"):
        training.train_and_evaluate(failing)  # the strict policy decodes every file first


@pytest.mark.parametrize("cache", ["none", "memory"])
def test_failures_in_a_row_and_at_the_end_of_an_epoch_each_keep_their_place(tmp_path, capfd, cache):
    """Decoded by every epoch (none) or by the first, which fills the cache (memory): the
    same places, and with the cache each file is named once, by the pass that met it."""
    paths, labels = numbered_split(tmp_path, 12, corrupt=[0, 6, 7, 10, 11])
    options = options_lib.PipelineOptions(image_size=(8, 8), batch_size=5, cache=cache)
    prepared = inputs.read(paths, labels, 3, options, decode=False)
    assert (prepared.prepared.filling is not None) == (cache == "memory")
    for _ in range(2):
        batches = list(inputs.evaluation_batches(prepared))  # in the files' order
        assert [len(x) for x, _ in batches] == [5, 5, 5]  # the last padded with 3 blanks
        images = np.concatenate([x.numpy() for x, _ in batches])[:12]
        one_hot = np.concatenate([y.numpy() for _, y in batches])[:12]
        for number in range(12):
            if number in (0, 6, 7, 10, 11):
                assert not images[number].any() and not one_hot[number].any()
            else:
                assert (images[number] == number).all() and one_hot[number].argmax() == number % 3
    lines = capfd.readouterr().err.splitlines()
    for n in (0, 6, 7, 10, 11):
        named = [
            line for line in lines if re.search(f"unreadable image {re.escape(paths[n])}[: ]", line)
        ]
        assert len(named) == (1 if cache == "memory" else 2), paths[n]
