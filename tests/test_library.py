"""The library on its own (`rps_tfdata.pipeline`): the pass builder with a step of the
test's, the one reader and its split, the cache policy; each against IDG or by
construction."""

import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow.keras.preprocessing.image import ImageDataGenerator as KerasIDG

from rps_tfdata.image import ImageDataGenerator
from rps_tfdata.infra.errors import DatasetLayoutError
from rps_tfdata.infra.resources import MemoryRoom
from rps_tfdata.pipeline import passes
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import cache_policy, decode, filling, listing, prepare, reader
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation

from .helpers import RPS28, corrupt_png, write_png

OPTIONS = PipelineOptions(image_size=(8, 8), batch_size=4)


def numbered(count: int, ids=None) -> prepare.Prepared:
    """`count` 8x8 images whose every pixel is its row, as arrays in memory."""
    pixels = np.arange(count, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    return prepare.from_pixels(pixels, OPTIONS, ids=ids)


def the_batches(dataset):
    return [passes.Batch(*(t.numpy() for t in batch)) for batch in dataset]


def pass_of(prepared, pass_number=0, **options):
    """The `Batch`es of one pass, through a step that gives them back as they are."""
    return the_batches(
        passes.one_pass(prepared, pass_number, lambda batch: batch, seed=5, batch_size=4, **options)
    )


def test_a_pass_hands_the_step_every_row_once_with_its_seeds():
    prepared = numbered(10, ids=range(100, 110))
    batches = pass_of(prepared, 7)
    assert [len(b.rows) for b in batches] == [4, 4, 2]  # IDG's partial last batch
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows) == list(range(10)) and list(rows) != list(range(10))  # shuffled
    for batch in batches:
        assert (batch.pixels[:, 0, 0, 0] == batch.rows).all()  # each row's own pixels
        ids = 100 + batch.rows
        np.testing.assert_array_equal(batch.seeds, np.stack([[5] * len(ids), 7 * 2**32 + ids], 1))
        assert batch.readable.all() and (batch.pass_number == 7).all()
    assert [list(b.rows) for b in pass_of(prepared, 7)] == [list(b.rows) for b in batches]
    assert [list(b.rows) for b in pass_of(prepared, 8)] != [list(b.rows) for b in batches]


def test_a_padded_pass_fills_its_last_batch_with_blank_rows():
    batches = pass_of(numbered(10), 0, shuffle=False, pad=True)
    assert [len(b.rows) for b in batches] == [4, 4, 4]
    last = batches[-1]
    assert list(last.rows) == [8, 9, -1, -1] and list(last.readable) == [True, True, False, False]
    assert (last.seeds[2:] == passes.NO_IMAGE).all() and not last.pixels[2:].any()


def test_a_pass_skips_its_first_images_before_reading_them():
    whole = np.concatenate([b.rows for b in pass_of(numbered(10), 3)])
    rest = np.concatenate([b.rows for b in pass_of(numbered(10), 3, skip_images=6)])
    np.testing.assert_array_equal(rest, whole[6:])


def test_a_pass_stops_before_an_image_and_reads_none_after_it():
    whole = np.concatenate([b.rows for b in pass_of(numbered(10), 3)])
    part = pass_of(numbered(10), 3, skip_images=2, stop_images=7)
    assert [len(b.rows) for b in part] == [4, 1]
    np.testing.assert_array_equal(np.concatenate([b.rows for b in part]), whole[2:7])
    assert all((b.pixels == b.rows[:, None, None, None]).all() for b in part)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_the_warp_gives_the_same_bits_from_the_caches_bytes_as_from_floats(jit_compile):
    layer = IDGAugmentation(
        rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
        zoom_range=0.2, horizontal_flip=True, jit_compile=jit_compile,
    )  # fmt: skip
    pixels = np.random.default_rng(3).integers(0, 256, (6, 20, 24, 3), np.uint8)
    seeds = passes.augmentation_seeds(4, 1, tf.range(6))
    from_bytes = layer.augment_batch(tf.constant(pixels), seeds).numpy()
    from_floats = layer.augment_batch(tf.constant(pixels, tf.float32), seeds).numpy()
    assert from_bytes.dtype == np.float32 and not np.array_equal(from_bytes, pixels)
    np.testing.assert_array_equal(from_bytes, from_floats)


def test_a_pass_augments_each_image_with_its_own_seed_whatever_its_batch():
    layer = IDGAugmentation(rotation_range=30, zoom_range=0.2)
    noise = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), np.uint8)
    prepared = prepare.from_pixels(noise, OPTIONS)

    def by_row(batch_size):
        dataset = passes.one_pass(
            prepared, 2, lambda b: b, seed=1, batch_size=batch_size, augmentation=layer
        )
        return {
            int(r): p for b in the_batches(dataset) for r, p in zip(b.rows, b.pixels, strict=True)
        }

    seeds = passes.augmentation_seeds(1, 2, tf.range(4))
    expected = layer(tf.constant(noise, tf.float32), training=True, seed=seeds).numpy()
    whole = by_row(4)
    for found in (by_row(2), by_row(3), whole):  # 3: a partial last batch, padded
        assert sorted(found) == [0, 1, 2, 3]
        for row, pixels in found.items():
            assert pixels.dtype == np.float32
            np.testing.assert_allclose(pixels, expected[row], atol=1e-4)
            # The same bits: each image's warp is computed alone, whatever the batch size.
            np.testing.assert_array_equal(pixels, whole[row])


def test_a_partial_last_batch_is_augmented_in_the_shape_of_a_whole_one():
    """XLA compiles the augmentation once per shape (about 0.5 s): a pass's partial last
    batch, padded, takes the whole batches' compilation."""
    layer = IDGAugmentation(rotation_range=30)
    compiled, shapes = layer._augment, []

    def recording(images, *args, **kwargs):
        shapes.append(tuple(images.shape))  # the shapes the compiled function is traced for
        return compiled(images, *args, **kwargs)

    layer._augment = recording
    batches = pass_of(numbered(10), 1, augmentation=layer)
    assert [len(b.rows) for b in batches] == [4, 4, 2]
    assert shapes == [(4, 8, 8, 3)]


def test_passes_follow_one_another_in_one_dataset():
    prepared = numbered(6)
    dataset = passes.over_passes(
        tf.data.Dataset.range(2, 4),
        lambda number: passes.one_pass(
            prepared, number, lambda b: b.pass_number, seed=1, batch_size=4
        ),
        OPTIONS,
    )
    assert [int(n) for n in dataset] == [2, 2, 3, 3]
    assert passes.batches_per_pass(6, 4) == 2 and passes.batches_per_pass(8, 4) == 2


@pytest.mark.parametrize("count, split", [(10, 0.2), (7, 0.3), (3, 0.5), (5, 0.0)])
def test_the_one_split_is_idgs_for_arrays(count, split):
    """`split_rows` against IDG's own array iterator: the first rows are validation."""
    x = np.arange(count, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3))
    for subset in ("training", "validation"):
        rows = listing.split_rows(count, split, subset)
        if split == 0.0 or not len(range(count)[rows]):
            continue
        theirs = KerasIDG(validation_split=split).flow(
            x, batch_size=count, shuffle=False, subset=subset
        )
        np.testing.assert_array_equal(x[rows], theirs.x)
    assert listing.split_rows(count, split, None) == slice(0, count)
    with pytest.raises(ValueError, match="Invalid subset name: 'test'"):
        listing.split_rows(count, split, "test")


def test_the_reader_reads_a_directory_a_file_list_and_an_array_with_the_one_split(tmp_path):
    chosen, prepared = reader.read_directory(
        RPS28, OPTIONS._replace(cache="none"), validation_split=0.2, subset="validation"
    )
    assert chosen.paths == listing.subset(listing.list_folder(RPS28), 0.2, "validation").paths
    assert prepared.paths == chosen.paths and prepared.ids == list(range(len(chosen.paths)))
    rows, files = reader.read_files(chosen.paths, OPTIONS, validation_split=0.5, subset="training")
    assert files.paths == chosen.paths[rows] and rows == listing.split_rows(
        len(chosen.paths), 0.5, "training"
    )
    rows, array = reader.read_pixels(
        np.zeros((5, 3, 4, 1)), OPTIONS, validation_split=0.4, subset="validation"
    )
    assert rows == slice(0, 2) and array.count == 2 and array.options.image_size == (3, 4)
    with pytest.raises(DatasetLayoutError, match="no readable image file"):
        prepare.require_images(reader.read_files([], OPTIONS)[1], "the list")


def test_every_read_of_files_one_way_calls_one_function_traced_once(tmp_path):
    """A file's read is built once per way of reading in a process, whichever dataset
    reads (a first read into memory, a pass without a cache), and gives the pixels of
    `load_image` itself."""
    options = OPTIONS._replace(image_size=(9, 7), resize_method="pil_bilinear")
    loader = prepare._loader((9, 7), "pil_bilinear", "rgb", False)
    files = sorted(os.path.join(RPS28, "rock", f) for f in os.listdir(f"{RPS28}/rock"))[:5]
    _, in_memory = reader.read_files(
        files, options._replace(cache="disk", cache_path=str(tmp_path))
    )
    _, filled = reader.read_files(files, options)
    _, uncached = reader.read_files(files, options._replace(cache="none"))
    read = [
        np.concatenate([b.pixels for b in pass_of(p, shuffle=False)])
        for p in (in_memory, filled, uncached)
    ]
    assert loader.experimental_get_tracing_count() == 1
    np.testing.assert_array_equal(read[0], read[1])
    np.testing.assert_array_equal(read[0], read[2])
    own = decode.load_image(tf.constant(files[2]), (9, 7), "pil_bilinear")
    np.testing.assert_array_equal(read[0][2], own.numpy())


def test_the_first_pass_fills_the_memory_cache_and_the_next_reads_no_file(tmp_path):
    """Nothing is decoded before the passes; a pass cut short fills what it read; the
    pass after the whole first one gives the same pixels with the files gone."""
    files = [str(tmp_path / f"{k}.png") for k in range(10)]
    for k, path in enumerate(files):
        write_png(path, np.full((8, 8, 3), 20 * k, np.uint8))
    _, prepared = reader.read_files(files, OPTIONS)
    state = prepared.filling.state
    assert prepared.count == 10 and not prepared.decoded and not state.numpy().any()
    part = pass_of(prepared, 3, stop_images=4)
    assert sorted(state.numpy()) == [0] * 6 + [filling.CACHED] * 4
    assert set(np.concatenate([b.rows for b in part])) == set(np.flatnonzero(state.numpy()))
    first = pass_of(prepared, 1)
    for path in files:
        os.remove(path)
    again = pass_of(prepared, 1)
    assert (state.numpy() == filling.CACHED).all()
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.pixels, b.pixels)
        assert (a.pixels[:, 0, 0, 0] == 20 * a.rows).all() and a.readable.all()


def test_a_file_gone_before_the_first_pass_is_met_by_it(tmp_path, capfd):
    """The flow's files are read by its first pass, not before: one removed after the
    flow was made is named by the pass, and left out of every pass after."""
    files = [str(tmp_path / f"{k}.png") for k in range(6)]
    for path in files:
        write_png(path, np.zeros((8, 8, 3), np.uint8))
    _, prepared = reader.read_files(files, OPTIONS)
    os.remove(files[4])
    for _ in range(2):
        batches = pass_of(prepared, 0, shuffle=False)
        readable = np.concatenate([b.readable for b in batches])
        assert readable.tolist() == [True] * 4 + [False, True]
    named = [line for line in capfd.readouterr().err.splitlines() if "4.png" in line]
    assert len(named) == 1 and "it could not be read" in named[0]


def test_out_of_order_maps_leave_a_failed_file_its_place_in_the_first_pass(tmp_path, capfd):
    """`deterministic=False` lets parallel maps return batches as they finish; within
    the first pass's stream the images keep their order anyway (its scan puts a blank
    where a file failed): each batch holds its own turns, and the file is named once.
    (Nine small files seldom finish out of order: this guards the options' path, not
    the scan's ordering, which test_bad_images presses harder.)"""
    files = [str(tmp_path / f"{k}.png") for k in range(9)]
    for k, path in enumerate(files):
        write_png(path, np.full((8, 8, 3), 20 * k, np.uint8))
    with open(files[5], "wb") as corrupt:
        corrupt.write(corrupt_png())
    options = OPTIONS._replace(deterministic=False, parallel_calls=4)
    _, prepared = reader.read_files(files, options)
    for _ in range(2):
        one = passes.one_pass(prepared, 0, lambda b: b, seed=5, batch_size=4, shuffle=False)
        batches = the_batches(passes.prefetched(one, options))
        assert sorted(b.rows.tolist() for b in batches) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
        rows = np.concatenate([b.rows for b in batches])
        readable = np.concatenate([b.readable for b in batches])
        pixels = np.concatenate([b.pixels for b in batches])
        assert readable[np.argsort(rows)].tolist() == [True] * 5 + [False] + [True] * 3
        assert (pixels[readable, 0, 0, 0] == 20 * rows[readable]).all()
        assert not pixels[rows == 5].any()
    named = [line for line in capfd.readouterr().err.splitlines() if "5.png" in line]
    assert len(named) == 1 and "corrupt" in named[0]


def test_validate_filenames_keeps_images_that_exist(tmp_path):
    write_png(str(tmp_path / "a.png"), np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    names = ["a.png", "missing.png", "notes.txt"]
    keep = reader.existing_images([os.path.join(tmp_path, n) for n in names])
    assert keep.tolist() == [True, False, False]


def test_the_cache_policy_keeps_memory_for_what_fits_beside_training():
    shape = (150, 150, 3)  # 67.5 KB an image
    peak_mb = cache_policy.memory_cache_peak([100, 50], shape) / 2**20
    assert peak_mb == pytest.approx(67_500 * 250 / 2**20)
    roomy = MemoryRoom(2 * cache_policy.ROOM_FOR_TRAINING_MB + 2 * peak_mb + 1, "test")
    tight = MemoryRoom(cache_policy.ROOM_FOR_TRAINING_MB + peak_mb / 2, "test")
    assert cache_policy.choose("auto", [100, 50], shape, roomy).cache == "memory"
    assert cache_policy.choose("auto", [100, 50], shape, tight).cache == "disk"
    assert cache_policy.choose("none", [100, 50], shape, tight).cache == "none"
    with pytest.raises(cache_policy.MemoryCacheTooLargeError, match="150x150 takes up to"):
        cache_policy.choose("memory", [100, 50], shape, tight)


def test_the_drop_in_chooses_its_cache_by_the_policy_and_names_its_own_keyword(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(reader.resources, "memory_room", lambda: MemoryRoom(10, "a test's room"))
    generator = ImageDataGenerator()
    flow = generator.flow_from_directory(
        RPS28, target_size=(8, 8), cache="auto", cache_dir=str(tmp_path)
    )
    assert len(os.listdir(tmp_path)) == 1  # on disk: it does not fit in 10 MB
    assert flow.samples == 60
    with pytest.raises(ValueError, match="cache='memory': the memory cache of 60 images"):
        generator.flow_from_directory(RPS28, target_size=(8, 8), cache="memory")


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_a_frames_rows_keep_their_targets_when_files_are_unreadable(tmp_path, cache):
    """An unreadable file is left out: of its batch by the first pass (memory), or of the
    flow by the read before it (disk); the drop-in's targets follow each image by its id,
    not by its place among the readable ones."""
    for name, value in (("a.png", 10), ("c.png", 30)):
        write_png(str(tmp_path / name), np.full((4, 4, 3), value, np.uint8))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    frame = pd.DataFrame({"filename": ["a.png", "b.png", "c.png"], "y": [1.0, 2.0, 3.0]})
    flow = ImageDataGenerator().flow_from_dataframe(
        frame,
        str(tmp_path),
        y_col="y",
        class_mode="raw",
        target_size=(4, 4),
        shuffle=False,
        cache=cache,
        cache_dir=str(tmp_path / "cache"),
    )
    ((x, y),) = list(flow)
    assert x[:, 0, 0, 0].tolist() == [10, 30] and y.tolist() == [1.0, 3.0]
    listed = ["a.png", "c.png"] if cache == "disk" else ["a.png", "b.png", "c.png"]
    assert flow.filenames == listed and len(flow.labels) == len(listed)
