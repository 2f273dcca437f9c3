"""Decode, resize and batching, against Keras' legacy loader (PIL) and by construction."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.keras.preprocessing.image import img_to_array, load_img

from rps_tfdata.bench import seed_reference
from rps_tfdata.pipeline import options as options_lib
from rps_tfdata.pipeline import passes
from rps_tfdata.pipeline.reading import decode, listing, pil_resize
from rps_tfdata.pipeline.transforms import augment
from rps_tfdata.trainer import inputs
from rps_tfdata.trainer.config import SEED_AUGMENTATION

from .helpers import RPS28, write_png

SIZES = [(150, 150), (37, 211), (300, 300), (151, 149), (450, 75), (160, 180), (4096, 9)]


def idg_load(path, size=(150, 150)):
    return img_to_array(load_img(path, target_size=size, interpolation="nearest"))


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("source_size", SIZES)
def test_pil_nearest_resize_equals_pil(source_size):
    image = noise((*source_size, 3))
    expected = np.asarray(Image.fromarray(image).resize((150, 150), Image.NEAREST))
    ours = decode.resize(tf.constant(image), (150, 150), "pil_nearest").numpy()
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("size_in", [4500, 6001, 9999])
def test_beyond_the_table_indices_equal_pil(size_in):
    row = np.arange(size_in, dtype=np.int32)[None].repeat(2, axis=0)
    expected = np.asarray(Image.fromarray(row, "I").resize((150, 2), Image.NEAREST))[0]
    ours = pil_resize.nearest_indices(tf.constant(size_in), 150).numpy()
    np.testing.assert_array_equal(ours, expected)


def test_pil_nearest_inside_dataset_map_equals_eager():
    image = noise((123, 77, 3))
    dataset = tf.data.Dataset.from_tensors(image).map(
        lambda x: decode.resize(x, (50, 60), "pil_nearest")
    )
    np.testing.assert_array_equal(
        next(iter(dataset)).numpy(), decode.resize(image, (50, 60), "pil_nearest").numpy()
    )


def _png_variants(tmp_path):
    rgb = noise((97, 203, 3), seed=1)
    paths = {"rgb": write_png(str(tmp_path / "rgb.png"), rgb)}
    Image.fromarray(noise((180, 160, 4), seed=2), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(noise((310, 290), seed=3), "L").save(tmp_path / "gray.png")
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "palette.png")
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=90)
    Image.fromarray(rgb).save(tmp_path / "bitmap.bmp")
    for name in ("rgba.png", "gray.png", "palette.png", "photo.jpg", "bitmap.bmp"):
        paths[name] = str(tmp_path / name)
    return paths


def test_load_image_equals_idg_loader_for_png_jpeg_bmp(tmp_path):
    for name, path in _png_variants(tmp_path).items():
        ours = decode.load_image(tf.constant(path), (150, 150), "pil_nearest").numpy()
        np.testing.assert_array_equal(ours.astype(np.float32), idg_load(path), err_msg=name)


def test_16_bit_rgb_png_equals_idg_loader(tmp_path):
    rgb16 = np.random.default_rng(4).integers(0, 65536, (70, 90, 3), dtype=np.uint16)
    path = write_png(str(tmp_path / "rgb16.png"), rgb16)
    ours = decode.load_image(tf.constant(path), (150, 150), "pil_nearest").numpy()
    np.testing.assert_array_equal(ours.astype(np.float32), idg_load(path))


def test_16_bit_grey_png_is_scaled_where_idg_saturates(tmp_path):
    """A deliberate difference: PIL's convert("RGB") clips 16-bit grey at 255 (a white
    image); TensorFlow scales it to 8 bits, as it (and PIL) do for 16-bit RGB."""
    grey16 = np.full((20, 20, 1), 32768, np.uint16)
    path = write_png(str(tmp_path / "grey16.png"), grey16)
    ours = decode.load_image(tf.constant(path), (20, 20), "pil_nearest").numpy()
    assert np.all(idg_load(path, (20, 20)) == 255)
    assert np.all(ours == 128)


@pytest.mark.parametrize("method", ["bilinear", "area"])
def test_other_resize_methods_give_uint8_of_the_right_size(method):
    out = decode.resize(tf.constant(noise((90, 70, 3))), (48, 52), method)
    assert out.dtype == tf.uint8 and out.shape == (48, 52, 3)


def test_unknown_resize_method_is_rejected():
    with pytest.raises(ValueError, match="Received: 'cubic'"):
        decode.resize(tf.constant(noise((9, 9, 3))), (4, 4), "cubic")


def _rps28_split(subset="validation"):
    return listing.list_split(RPS28, 0.2, subset)


@pytest.mark.parametrize("subset", ["training", "validation"])
def test_unaugmented_batches_equal_idg_batches_after_rescale(subset):
    """Nothing between the files and the model differs: same images, order, labels, scale."""
    split = listing.list_split(RPS28, 0.2, subset)
    iterators = seed_reference.seed_iterators(
        RPS28, image_size=64, batch_size=16, augment=False, shuffle=False
    )
    idg = iterators.train if subset == "training" else iterators.validation
    options = options_lib.PipelineOptions(image_size=(64, 64), batch_size=16)
    prepared = inputs.read(split.paths, split.labels, 3, options)
    ours = list(inputs.evaluation_batches(prepared))
    assert len(ours) == len(idg) >= 1
    for batch, (batch_images, labels) in enumerate(ours):
        expected_images, expected_labels = idg[batch]
        assert batch_images.dtype == tf.uint8  # a quarter of float32's bytes to the device
        held = len(expected_labels)  # IDG's last batch is partial; ours is padded
        assert len(labels) == 16 and not labels.numpy()[held:].any()
        rescaled = decode.rescale(batch_images[:held]).numpy()
        np.testing.assert_array_equal(rescaled, expected_images)
        np.testing.assert_array_equal(labels.numpy()[:held], expected_labels)


def numbered_pngs(folder, count):
    """`count` 8x8 PNGs whose pixels all equal their number, labelled number % 3."""
    paths = [
        write_png(str(folder / f"c{i % 3}" / f"{i:02d}.png"), np.full((8, 8, 3), i, np.uint8))
        for i in range(count)
    ]
    return paths, [i % 3 for i in range(count)]


def epoch_values(batches, steps):
    """The images' numbers in the order one epoch of `batches` yields them, and how many
    images each batch holds (the rest of its rows are blanks with seeds NO_IMAGE)."""
    values, sizes = [], []
    for _ in range(steps):
        x, y, seeds = next(batches)
        held = seeds.numpy()[:, 1] >= 0
        sizes.append(int(held.sum()))
        assert len(x) == 6 and not y.numpy()[~held].any()  # one shape; blanks unlabelled
        numbers = x.numpy()[held, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(y.numpy()[held].argmax(1), numbers % 3)  # labels follow
        values.append(numbers)
    return np.concatenate(values), sizes


@pytest.mark.parametrize("cache", options_lib.CACHE_MODES)
def test_every_epoch_is_a_new_full_permutation_and_a_function_of_seed_and_epoch(tmp_path, cache):
    paths, labels = numbered_pngs(tmp_path, 20)
    options = options_lib.PipelineOptions(
        image_size=(8, 8), batch_size=6, cache=cache, cache_path=str(tmp_path / "cache")
    )
    prepared = inputs.read(paths, labels, 3, options)
    batches = iter(inputs.training_batches(prepared, seed=1, end_epoch=3))
    seen = [epoch_values(batches, 4) for _ in range(3)]
    assert all(sizes == [6, 6, 6, 2] for _, sizes in seen)  # partial last batch kept, padded
    assert all(sorted(values) == list(range(20)) for values, _ in seen)
    assert not np.array_equal(seen[0][0], seen[1][0])
    # A pipeline started at epoch 2 (a resumed run) yields epoch 2 exactly.
    resumed = iter(inputs.training_batches(prepared, seed=1, start_epoch=2, end_epoch=3))
    np.testing.assert_array_equal(epoch_values(resumed, 4)[0], seen[2][0])


def test_augmentation_depends_on_seed_epoch_and_image_not_on_batch():
    split = _rps28_split()
    layer = augment.IDGAugmentation(**SEED_AUGMENTATION)

    def images_by_id(batch_size, seed=3, epoch=0):
        options = options_lib.PipelineOptions(image_size=(48, 48), batch_size=batch_size)
        prepared = inputs.read(split.paths[:12], split.labels[:12], 3, options)
        batches = inputs.training_batches(
            prepared, seed=seed, start_epoch=epoch, end_epoch=epoch + 1, augmentation=layer
        )
        found = {}
        for x, _, seeds in batches:
            for image, image_seed in zip(x.numpy(), seeds.numpy(), strict=True):
                found[int(image_seed[1]) % (1 << 32)] = image
        return found

    by_4, by_5 = images_by_id(4), images_by_id(5)
    assert passes.pixel_dtype(layer) == tf.float32 and passes.pixel_dtype(None) == tf.uint8
    assert sorted(by_4) == list(range(12))
    for image_id in by_4:  # same image, same epoch: same augmentation in any batch
        np.testing.assert_allclose(by_4[image_id], by_5[image_id], atol=1e-6)
    other_seed, other_epoch = images_by_id(4, seed=4), images_by_id(4, epoch=1)
    assert not np.allclose(by_4[0], other_seed[0]) and not np.allclose(by_4[0], other_epoch[0])
    assert all(0 <= v.min() and v.max() <= 255 and v.dtype == np.float32 for v in by_4.values())


def test_evaluation_batches_keep_order():
    split = _rps28_split()
    options = options_lib.PipelineOptions(image_size=(48, 48), batch_size=5)
    prepared = inputs.read(split.paths[:7], split.labels[:7], 3, options)
    batches = list(inputs.evaluation_batches(prepared))
    assert [len(x) for x, _ in batches] == [5, 5]  # the last padded with 3 blanks
    assert [int(y.numpy().sum()) for _, y in batches] == [5, 2]
    expected = idg_load(split.paths[6], (48, 48))
    np.testing.assert_array_equal(batches[1][0][1].numpy(), expected)


def test_a_split_without_readable_images_is_an_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"")
    prepared = inputs.read([str(tmp_path / "bad.png")], [0], 3, options_lib.PipelineOptions())
    with pytest.raises(ValueError, match="no readable image"):
        inputs.evaluation_batches(prepared)


def test_the_disk_cache_is_keyed_by_what_it_holds(tmp_path):
    paths, labels = numbered_pngs(tmp_path / "data", 6)
    options = options_lib.PipelineOptions(
        image_size=(8, 8), batch_size=6, cache="disk", cache_path=str(tmp_path / "cache")
    )
    first = inputs.read(paths, labels, 3, options, name="train")
    assert os.listdir(tmp_path / "cache") == [os.path.basename(first.prepared.cache_folder)]
    write_png(paths[0], np.full((8, 8, 3), 200, np.uint8))  # other pixels, same path
    second = inputs.read(paths, labels, 3, options, name="train")
    assert second.prepared.cache_folder != first.prepared.cache_folder
    assert os.listdir(tmp_path / "cache") == [os.path.basename(second.prepared.cache_folder)]
    ((images, _),) = inputs.evaluation_batches(second)
    assert int(images[0, 0, 0, 0]) == 200  # the new file, not the old pixels
    resized = inputs.read(paths, labels, 3, options._replace(image_size=(4, 4)), name="train")
    assert resized.prepared.cache_folder != second.prepared.cache_folder


def test_a_resumed_epoch_starts_at_its_first_unfinished_batch(tmp_path):
    """Skipped batches are the epoch's first ones, so the rest is what an uninterrupted
    run would have fed; with padding, the epoch still has its full number of steps."""
    paths, labels = numbered_pngs(tmp_path, 20)
    options = options_lib.PipelineOptions(image_size=(8, 8), batch_size=6)
    prepared = inputs.read(paths, labels, 3, options)
    whole = list(inputs.training_batches(prepared, seed=1, start_epoch=1, end_epoch=3))
    resumed = list(
        inputs.training_batches(prepared, seed=1, start_epoch=1, end_epoch=3, skip_batches=2)
    )
    assert len(resumed) == len(whole) - 2
    for ours, theirs in zip(resumed, whole[2:], strict=True):
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    padded = inputs.training_batches(
        prepared, seed=1, start_epoch=1, end_epoch=2, batches_per_epoch=6, skip_batches=5
    )
    # 4 batches of images, 2 of blanks: the one left is blank, of the same shape.
    assert [(len(x), int(y.numpy().sum())) for x, y, _ in padded] == [(6, 0)]
