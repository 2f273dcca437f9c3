"""`rps_tfdata.image.ImageDataGenerator` against Keras' own legacy generator, on the same
files: every `class_mode` and `color_mode` pixel for pixel, the split, order and
attributes, `flow` and `flow_from_dataframe`, the standardisation and `fit`, the
augmentation's parameters, `save_to_dir`, the passes of `model.fit`, and each refusal."""

import inspect
import os
import shutil
import threading
import time

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from keras.src.legacy.preprocessing.image import ImageDataGenerator as KerasIDG
from PIL import Image

from rps_tfdata import image
from rps_tfdata.image import IDGAugmentation, ImageDataGenerator, iterators
from rps_tfdata.pipeline.transforms import standardize
from rps_tfdata.trainer.config import SEED_AUGMENTATION
from tests import helpers

DATA = os.path.join(os.path.dirname(__file__), "data", "rps28")


def elements(batch) -> tuple:
    return batch if isinstance(batch, (tuple, list)) else (batch,)


def assert_same_batches(ours: tf.data.Dataset, theirs, exact: bool = True) -> None:
    """Every batch of one pass equal to IDG's: structure, dtype, shape and values."""
    assert len(ours) == len(theirs)
    for i, batch in enumerate(ours):
        mine, reference = elements(batch), elements(theirs[i])
        assert len(mine) == len(reference)
        for a, b in zip(mine, reference, strict=True):
            a, b = tf.nest.flatten(a), tf.nest.flatten(list(b) if isinstance(b, list) else b)
            for u, v in zip(a, b, strict=True):
                v = np.asarray(v)
                assert u.shape == v.shape and u.dtype == v.dtype
                if exact:
                    np.testing.assert_array_equal(u, v)
                else:
                    np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("class_mode", ["categorical", "binary", "sparse", "input", None])
def test_every_class_mode_and_color_mode_is_idgs_pixel_for_pixel(class_mode):
    classes = ["paper", "rock"] if class_mode == "binary" else None
    for color_mode in ("rgb", "grayscale", "rgba"):
        kwargs = dict(
            target_size=(20, 33),
            color_mode=color_mode,
            classes=classes,
            class_mode=class_mode,
            batch_size=7,
            shuffle=False,
            subset="validation",
            interpolation="bicubic",
        )
        ours = ImageDataGenerator(rescale=1 / 255, validation_split=0.3)
        theirs = KerasIDG(rescale=1 / 255, validation_split=0.3)
        assert_same_batches(
            ours.flow_from_directory(DATA, **kwargs), theirs.flow_from_directory(DATA, **kwargs)
        )


def test_the_split_order_and_attributes_are_idgs():
    for subset in ("training", "validation", None):
        kwargs = dict(target_size=(28, 28), batch_size=5, subset=subset, shuffle=False)
        ours = ImageDataGenerator(validation_split=0.25).flow_from_directory(DATA, **kwargs)
        theirs = KerasIDG(validation_split=0.25).flow_from_directory(DATA, **kwargs)
        for name in (
            "class_indices",
            "filenames",
            "filepaths",
            "samples",
            "num_classes",
            "image_shape",
            "batch_size",
            "directory",
            "n",
        ):
            assert getattr(ours, name) == getattr(theirs, name), name
        np.testing.assert_array_equal(ours.classes, theirs.classes)
        np.testing.assert_array_equal(ours.labels, theirs.labels)
        assert len(ours) == len(theirs) == -(-theirs.samples // 5)


def test_channels_first_float64_and_keep_aspect_ratio_are_idgs():
    kwargs = dict(
        target_size=(16, 24),
        batch_size=9,
        shuffle=False,
        keep_aspect_ratio=True,
        class_mode="sparse",
    )
    settings = dict(data_format="channels_first", dtype="float64", samplewise_center=True)
    assert_same_batches(
        ImageDataGenerator(**settings).flow_from_directory(DATA, **kwargs),
        KerasIDG(**settings).flow_from_directory(DATA, **kwargs),
        exact=False,
    )


def test_a_file_the_first_pass_cannot_read_is_named_once_and_left_out_of_its_batch(tmp_path, capfd):
    """The memory cache is filled by the first pass: the flow counts the files as IDG
    does, and a pass leaves out, and names once, what it cannot decode."""
    folder = tmp_path / "data"
    shutil.copytree(DATA, folder)
    (folder / "rock" / "broken.png").write_bytes(helpers.corrupt_png())
    (folder / "rock" / "text.png").write_bytes(b"not an image at all")
    (folder / "rock" / "empty.png").write_bytes(b"")
    ds = ImageDataGenerator().flow_from_directory(str(folder), target_size=(28, 28), seed=2)
    assert os.path.join("rock", "broken.png") in ds.filenames
    assert os.path.join("rock", "empty.png") not in ds.filenames  # a stat finds it now
    assert ds.samples == len(ds.filenames) == len(ds.classes) == 62
    assert "Found 62 images belonging to 3 classes." in capfd.readouterr().out
    assert [sum(len(y) for _, y in ds) for _ in range(2)] == [60, 60]
    lines = capfd.readouterr().err.splitlines()
    broken = [line for line in lines if "broken.png" in line]
    text = [line for line in lines if "text.png" in line]
    assert len(broken) == 1 and "its image data is corrupt" in broken[0]
    assert len(text) == 1 and "not a PNG, JPEG, GIF or BMP" in text[0]


def test_a_batch_of_unreadable_files_only_stops_the_pass_with_what_to_do(tmp_path):
    """An empty batch would make a model's loss NaN: the pass stops, as IDG's would."""
    folder = tmp_path / "data" / "rock"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    (folder / "b.png").write_bytes(helpers.corrupt_png())
    ds = ImageDataGenerator().flow_from_directory(
        str(tmp_path / "data"), target_size=(8, 8), batch_size=1, shuffle=False
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="every image of a batch is"):
        list(ds)


def test_the_first_pass_gives_the_batches_of_a_cache_filled_first(tmp_path):
    """Filled as the first pass reads, or before it (disk): the same bits, pass by pass."""
    kwargs = dict(target_size=(24, 24), batch_size=16, seed=4)
    generator = ImageDataGenerator(rescale=1 / 255, **SEED_AUGMENTATION)
    filled = generator.flow_from_directory(DATA, **kwargs, cache="memory")
    first = generator.flow_from_directory(DATA, **kwargs, cache="disk", cache_dir=str(tmp_path))
    for _ in range(2):
        for (a, y_a), (b, y_b) in zip(filled, first, strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(y_a, y_b)


def _dataset_ops(dataset: tf.data.Dataset) -> set:
    """The ops of a dataset's graph, its functions' included (TensorFlow's private
    serialisation: no public API shows a dataset's graph)."""
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    functions = [node for f in graph.library.function for node in f.node_def]
    return {node.op for node in [*graph.node, *functions]}


def test_once_the_first_pass_has_read_every_file_the_passes_are_gathers_alone():
    """`fit` makes an iterator each epoch: after the first pass, the one it makes runs
    the gathers without the streamed read's datasets (a quarter of a later epoch)."""
    ds = ImageDataGenerator(**SEED_AUGMENTATION).flow_from_directory(DATA, target_size=(8, 8))
    # (`_dataset`: what TensorFlow's iterator runs, a private attribute.)
    assert "ScanDataset" in _dataset_ops(iter(ds)._dataset)
    list(ds)
    assert "ScanDataset" not in _dataset_ops(iter(ds)._dataset)
    assert "ScanDataset" in _dataset_ops(ds)  # the flow's own graph, for what wraps it


def test_the_first_pass_scan_carries_rows_and_leaves_the_pixels_in_the_cache():
    """The scan that keeps a failed file's place runs once an image: carrying the
    pixels through it cost three more copies of each image (the read fell from 0.94x
    to 0.90x the bare decoder); the batch gathers them from the cache instead."""
    ds = ImageDataGenerator().flow_from_directory(DATA, target_size=(8, 8))
    graph = tf.compat.v1.GraphDef.FromString(iter(ds)._dataset._as_serialized_graph().numpy())
    nodes = [node for f in graph.library.function for node in f.node_def]
    scans = [node for node in [*graph.node, *nodes] if node.op == "ScanDataset"]
    assert scans
    for scan in scans:
        ranks = [len(shape.dim) for shape in scan.attr["output_shapes"].list.shape]
        assert max(ranks) <= 1, ranks  # rows (a vector), never (n, h, w, 3) pixels


def test_a_flow_builds_its_dataset_at_its_first_use_as_one_and_next_never_does():
    """`next(flow)` and `flow[i]` build only the pass they read; the dataset of every
    pass is built by the first use as a dataset, eagerly even inside a traced function
    (a dataset made in a function's graph could not be used outside it)."""
    flow = ImageDataGenerator().flow_from_directory(DATA, target_size=(8, 8), batch_size=16)
    flow[1], next(flow)
    assert "_variant_tensor_attr" not in vars(flow)  # (TensorFlow's dataset attribute)

    @tf.function
    def first_labels(dataset):
        return next(iter(dataset))[1]

    assert first_labels(flow).shape == (16, 3)
    assert "_variant_tensor_attr" in vars(flow)
    assert not isinstance(flow._graph_attr, tf.__internal__.FuncGraph)
    assert sum(len(x) for x, _ in flow) == flow.samples  # and Python iterates it whole


def test_a_flows_dataset_is_built_once_across_threads_and_a_failed_build_says_why_again():
    """Threads that first use a flow at once wait for one build; a build that fails
    says why at each use (an AttributeError inside a property would otherwise be
    reported as the property missing)."""
    made = []

    def make():
        made.append(threading.get_ident())
        time.sleep(0.2)
        return tf.data.Dataset.range(3)

    flow = iterators.Iterator(make, lambda *_: None, length=3, batch_size=1, seed=0)
    specs = []
    threads = [threading.Thread(target=lambda: specs.append(flow.element_spec)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and len(specs) == 3 and int(flow.cardinality()) == 3

    def broken():
        made.append("broken")
        raise AttributeError("no attribute 'shape' in the step")

    failing = iterators.Iterator(broken, lambda *_: None, length=1, batch_size=1, seed=0)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="no attribute 'shape' in the step"):
            failing.element_spec  # noqa: B018
    assert made.count("broken") == 2


def test_a_flow_made_in_a_strategys_scope_reads_its_files_before_it_returns(tmp_path):
    """A variable made in a strategy's scope would be the strategy's: such a flow fills
    its memory cache before it returns, and gives the batches of one filled by its
    passes."""
    folder = tmp_path / "data"
    shutil.copytree(DATA, folder)
    kwargs = dict(target_size=(16, 16), batch_size=16, seed=3)
    generator = ImageDataGenerator(**SEED_AUGMENTATION)
    filled = generator.flow_from_directory(DATA, **kwargs)
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        read_first = generator.flow_from_directory(str(folder), **kwargs)
    shutil.rmtree(folder)  # nothing left for a pass to read
    assert read_first.filenames == filled.filenames
    for _ in range(2):
        for (a, y_a), (b, y_b) in zip(filled, read_first, strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(y_a, y_b)


@pytest.mark.parametrize("cache", ["disk", "none"])
def test_every_cache_gives_the_memory_caches_batches(tmp_path, cache):
    kwargs = dict(target_size=(24, 24), batch_size=16, seed=4)
    generator = ImageDataGenerator(rescale=1 / 255, **SEED_AUGMENTATION)
    reference = [x for x, _ in generator.flow_from_directory(DATA, **kwargs, cache="memory")]
    ds = generator.flow_from_directory(DATA, **kwargs, cache=cache, cache_dir=str(tmp_path))
    for a, (b, _) in zip(reference, ds, strict=True):
        np.testing.assert_array_equal(a, b)
    assert bool(os.listdir(tmp_path)) == (cache == "disk")


def test_each_pass_draws_anew_and_the_seed_repeats_the_passes():
    generator = ImageDataGenerator(**SEED_AUGMENTATION)

    def two_passes(seed):
        ds = generator.flow_from_directory(
            DATA, target_size=(28, 28), seed=seed, class_mode="sparse"
        )
        return [list(ds) for _ in range(2)]

    first, again, other = two_passes(7), two_passes(7), two_passes(8)
    assert not np.array_equal(first[0][0][1], first[1][0][1])  # a new order each pass
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    for a, b in zip(first[0] + first[1], again[0] + again[1], strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(first[0][0][0], other[0][0][0])
    # Each image once per pass, the last batch partial, as IDG's.
    assert sorted(np.concatenate([y for _, y in first[1]]).tolist()) == sorted(
        generator.flow_from_directory(DATA, target_size=(28, 28)).classes.tolist()
    )
    assert [len(y) for _, y in first[0]] == [32, 28]


def test_without_shuffle_the_augmented_order_is_idgs():
    ds = ImageDataGenerator(**SEED_AUGMENTATION).flow_from_directory(
        DATA, target_size=(28, 28), shuffle=False, class_mode="sparse", batch_size=60
    )
    for _ in range(2):
        ((_, y),) = list(ds)
        np.testing.assert_array_equal(y, ds.classes)


def test_flow_yields_idgs_elements_with_weights_and_more_inputs():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (23, 12, 10, 3)).astype("float32")
    y = np.arange(23) % 3
    more = rng.normal(size=(23, 5))
    weights = rng.uniform(size=23)
    settings = dict(samplewise_std_normalization=True, rescale=0.5, validation_split=0.3)
    kwargs = dict(batch_size=4, shuffle=False, sample_weight=weights)
    with pytest.warns(UserWarning, match="overrides setting of `samplewise_center`"):
        ours = ImageDataGenerator(**settings).flow((x, more), y, **kwargs)
    theirs = KerasIDG(**settings).flow((x, more), y, **kwargs)
    assert_same_batches(ours, theirs, exact=False)
    # A subset's images keep their own weights (IDG pairs them with the first rows').
    training = ImageDataGenerator(**settings).flow(x, y, **kwargs, subset="training")
    cut = int(23 * 0.3)
    np.testing.assert_allclose(np.concatenate([w for _, _, w in training]), weights[cut:])
    np.testing.assert_array_equal(np.concatenate([t for _, t, _ in training]), y[cut:])
    assert_same_batches(
        ImageDataGenerator().flow(x, batch_size=5, shuffle=False),
        KerasIDG().flow(x, batch_size=5, shuffle=False),
    )


@pytest.fixture(scope="module")
def frame():
    rows = []
    for name in sorted(os.listdir(DATA)):
        for i, file in enumerate(sorted(os.listdir(os.path.join(DATA, name)))):
            rows.append(
                dict(
                    filename=f"{name}/{file}",
                    kind=name,
                    size=float(i),
                    tags=[name, "hand"] if i % 2 else [name],
                    weight=1.0 + i % 3,
                )
            )
    rows.insert(
        5, dict(filename="rock/missing.png", kind="rock", size=0.0, tags=["rock"], weight=1.0)
    )
    return pd.DataFrame(rows).sample(frac=1, random_state=0)


@pytest.mark.parametrize(
    "class_mode, y_col",
    [
        ("categorical", "kind"),
        ("categorical", "tags"),
        ("sparse", "kind"),
        ("raw", "size"),
        ("multi_output", ["size", "weight"]),
        ("input", "kind"),
        (None, "kind"),
    ],
)
def test_flow_from_dataframe_is_idgs(frame, class_mode, y_col):
    kwargs = dict(
        directory=DATA,
        y_col=y_col,
        class_mode=class_mode,
        target_size=(14, 14),
        batch_size=9,
        shuffle=False,
        subset="validation",
        weight_col="weight",
    )
    with pytest.warns(UserWarning, match="1 invalid image filename"):
        ours = ImageDataGenerator(validation_split=0.4).flow_from_dataframe(frame, **kwargs)
    theirs = KerasIDG(validation_split=0.4).flow_from_dataframe(frame, **kwargs)
    assert ours.filenames == theirs.filenames and ours.filepaths == theirs.filepaths
    if class_mode in ("categorical", "sparse"):
        assert ours.class_indices == theirs.class_indices
        assert list(ours.classes) == list(theirs.classes)
    assert_same_batches(ours, theirs)


def test_fit_and_standardize_are_idgs():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (40, 6, 5, 3)).astype("float32")
    for settings in (
        dict(featurewise_center=True, featurewise_std_normalization=True, rescale=1 / 255),
        dict(zca_whitening=True, zca_epsilon=1e-3),
        dict(featurewise_std_normalization=True, data_format="channels_first"),
    ):
        ours, theirs = ImageDataGenerator(**settings), KerasIDG(**settings)
        if ours.data_format == "channels_first":
            x = np.transpose(x, (0, 3, 1, 2))
        ours.fit(x)
        theirs.fit(x)
        for name in ("mean", "std", "zca_whitening_matrix"):
            a, b = getattr(ours, name), getattr(theirs, name)
            assert (a is None) == (b is None), name
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            ours.standardize(x[:3]), theirs.standardize(np.copy(x[:3])), rtol=1e-4, atol=1e-4
        )
        assert_same_batches(ours.flow(x, shuffle=False), theirs.flow(x, shuffle=False), exact=False)


def test_standardize_before_fit_warns_as_idg():
    with pytest.warns(UserWarning, match="hasn't been fit on any training data"):
        ImageDataGenerator(featurewise_center=True).standardize(np.ones((2, 3, 3, 3)))


def test_apply_transform_is_idgs_for_the_same_parameters():
    rng = np.random.default_rng(2)
    picture = rng.uniform(0, 255, (3, 17, 17)).astype("float32")
    params = dict(
        theta=12.0,
        tx=2.5,
        ty=-1.0,
        shear=7.0,
        zx=0.9,
        zy=1.1,
        flip_horizontal=True,
        flip_vertical=False,
        channel_shift_intensity=9.0,
        brightness=None,
    )
    settings = dict(data_format="channels_first", fill_mode="reflect", channel_shift_range=10.0)
    ours = ImageDataGenerator(**settings).apply_transform(picture, params)
    theirs = KerasIDG(**settings).apply_transform(picture, params)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_random_parameters_are_drawn_as_idg_draws_them():
    settings = dict(
        rotation_range=30,
        width_shift_range=[-3, 5],
        height_shift_range=4,
        zoom_range=(0.5, 1.5),
        horizontal_flip=True,
        brightness_range=(0.5, 1.0),
    )
    ours, theirs = ImageDataGenerator(**settings), KerasIDG(**settings)
    np.random.seed(0)
    idgs = [theirs.get_random_transform((20, 30, 3)) for _ in range(800)]
    # get_random_transform draws one image's parameters from the layer's sampler: the
    # distribution is taken from one batch of it, a few single draws checked against it
    batch = IDGAugmentation(**settings).sample_parameters(800, (20, 30), seed=0)
    singles = [ours.get_random_transform((20, 30, 3), seed=i) for i in range(10)]
    assert all(set(single) == set(idgs[0]) for single in singles)
    for key in ("theta", "tx", "ty", "zx", "zy", "flip_horizontal", "brightness"):
        a = np.asarray(batch[key], np.float64)
        b = np.array([float(d[key]) for d in idgs])
        single = np.array([float(d[key]) for d in singles])
        assert single.min() >= a.min() and single.max() <= a.max(), key
        assert set(np.unique(b)) <= set(np.unique(a)) or len(np.unique(b)) > 20, key
        spread = max(b.std(), 1e-9)
        assert abs(a.mean() - b.mean()) < 0.15 * spread and abs(a.std() - b.std()) < 0.1 * spread, (
            key
        )
        assert a.min() >= b.min() - 0.05 * spread and a.max() <= b.max() + 0.05 * spread, key


def test_a_graph_preprocessing_function_runs_in_the_graph_and_equals_idgs(caplog):
    function = keras.applications.mobilenet_v2.preprocess_input
    kwargs = dict(target_size=(28, 28), shuffle=False, batch_size=30)
    ours = ImageDataGenerator(preprocessing_function=function).flow_from_directory(DATA, **kwargs)
    assert "runs in Python" not in caplog.text
    theirs = KerasIDG(preprocessing_function=function).flow_from_directory(DATA, **kwargs)
    assert_same_batches(ours, theirs, exact=False)


def test_a_function_that_traces_differently_each_time_runs_in_python():
    calls = iter(range(100))

    def counted(image):  # a value taken when it is called, frozen into each trace
        return image + float(next(calls))

    scaled = keras.applications.mobilenet_v2.preprocess_input
    assert "different graph" in standardize.why_not_in_graph(counted, (8, 8, 3))
    assert standardize.why_not_in_graph(scaled, (8, 8, 3)) is None


def test_a_numpy_preprocessing_function_runs_in_python_and_says_so(caplog):
    def noisy(image):
        return image + np.random.uniform(0, 1, image.shape)

    ds = ImageDataGenerator(preprocessing_function=noisy).flow_from_directory(
        DATA, target_size=(28, 28), shuffle=False, class_mode=None
    )
    assert "noisy runs in Python" in caplog.text and "NumPy" in caplog.text
    first, second = next(iter(ds)), next(iter(ds))
    assert not np.array_equal(first, second)  # drawn per call, not frozen into a graph
    plain = next(
        iter(
            ImageDataGenerator().flow_from_directory(
                DATA, target_size=(28, 28), shuffle=False, class_mode=None
            )
        )
    )
    assert 0 <= (first - plain).min() and (first - plain).max() <= 1


def test_save_to_dir_writes_the_images_as_idg_does(tmp_path):
    folder = tmp_path / "seen"
    folder.mkdir()
    ds = ImageDataGenerator(rescale=1 / 255, samplewise_center=True).flow_from_directory(
        DATA,
        target_size=(28, 28),
        batch_size=6,
        shuffle=False,
        save_to_dir=str(folder),
        save_prefix="aug",
        class_mode=None,
    )
    batches = np.concatenate(list(ds))
    names = sorted(os.listdir(folder), key=lambda n: int(n.split("_")[1]))
    assert len(names) == 60 and all(n.startswith("aug_") and n.endswith(".png") for n in names)
    for name, x in zip(names, batches, strict=True):
        expected = keras.utils.array_to_img(x, scale=True)
        np.testing.assert_array_equal(np.asarray(Image.open(folder / name)), np.asarray(expected))


@pytest.mark.slow  # loads the model in a process that imports only rps_tfdata.image
def test_the_layer_in_a_users_model_fits_saves_loads_and_exports(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((28, 28, 3)),
            IDGAugmentation(**SEED_AUGMENTATION, brightness_range=(0.8, 1.2)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "categorical_crossentropy")
    ds = ImageDataGenerator().flow_from_directory(DATA, target_size=(28, 28), batch_size=16)
    model.fit(ds, epochs=1, verbose=0)
    x = next(iter(ds))[0]
    np.testing.assert_array_equal(model.layers[0](x, training=False), x)
    assert not np.array_equal(model.layers[0](x, training=True), x)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = helpers.run_python(
        [
            "-c",
            "import sys, numpy as np, keras, rps_tfdata.image\n"
            f"m = keras.models.load_model({path!r})\n"
            "print(type(m.layers[0]).__name__, m.layers[0].get_config()['brightness_range'])\n"
            "print(m.predict(np.full((1, 28, 28, 3), 100.0), verbose=0).shape)\n",
        ]
    ).stdout
    assert "IDGAugmentation (0.8, 1.2)" in loaded and "(1, 3)" in loaded
    model.export(str(tmp_path / "export"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "export"))
    np.testing.assert_allclose(served.serve(x), model(x, training=False), atol=1e-5)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda g: g.flow_from_directory(DATA, color_mode="cmyk"), "Invalid color mode: cmyk"),
        (
            lambda g: g.flow_from_directory(DATA, interpolation="area"),
            "Invalid interpolation method 'area'",
        ),
        (lambda g: g.flow_from_directory(DATA, class_mode="raw"), "Invalid class_mode: 'raw'"),
        (lambda g: g.flow_from_directory(DATA, subset="test"), "Invalid subset name: 'test'"),
        (lambda g: g.flow_from_directory(DATA, cache="gpu"), "cache='gpu': expected one of"),
        (
            lambda g: g.flow_from_directory(DATA, save_to_dir=DATA, save_format="gif"),
            "save_format='gif'",
        ),
        (
            lambda g: g.flow_from_directory(DATA, save_to_dir="/nonexistent", class_mode=None),
            "save_to_dir '/nonexistent' is not a folder; create it first",
        ),
        (
            lambda g: g.flow_from_directory(
                DATA, color_mode="rgba", save_to_dir=DATA, save_format="jpeg"
            ),
            "cannot hold RGBA images",
        ),
        (lambda g: g.flow(np.zeros((4, 5, 5))), "should have rank 4"),
        (lambda g: g.flow(np.zeros((4, 5, 5, 3)), np.zeros(3)), "should have the same length"),
        (
            lambda g: g.flow_from_dataframe(
                pd.DataFrame({"filename": ["a.png"], "class": ["a"]}), target_szie=(8, 8)
            ),
            "unexpected keyword arguments \\['target_szie'\\]",
        ),
        (lambda g: g.fit(np.zeros((3, 4))), "should have rank 4"),
    ],
)
def test_each_refusal_names_what_to_change(call, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")):
        call(ImageDataGenerator())


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(data_format="channels_middle"), "`data_format` should be"),
        (dict(validation_split=1.5), "strictly between 0 and 1"),
        (dict(brightness_range=0.5), "brightness_range should be tuple or list of two floats"),
        (dict(zoom_range=(1, 2, 3)), "zoom_range"),
        (dict(fill_mode="mirror"), "fill_mode must be one of"),
        (dict(interpolation_order=3), "interpolation_order must be 0"),
    ],
)
def test_each_constructor_refusal_names_the_keyword(settings, message):
    with pytest.raises(ValueError, match=message):
        ImageDataGenerator(**settings)


@pytest.mark.parametrize(
    "method",
    [
        "__init__",
        "flow",
        "flow_from_directory",
        "flow_from_dataframe",
        "fit",
        "standardize",
        "get_random_transform",
        "apply_transform",
        "random_transform",
    ],
)
def test_every_keyword_of_idg_is_taken_with_its_default_in_its_place(method):
    """One import changed: Keras' parameters first, in order, with Keras' defaults; ours
    only after them, keyword-only."""
    theirs = list(inspect.signature(getattr(KerasIDG, method)).parameters.values())
    ours = list(inspect.signature(getattr(image.ImageDataGenerator, method)).parameters.values())
    assert any(p.kind == p.VAR_KEYWORD for p in ours) == (theirs[-1].kind == theirs[-1].VAR_KEYWORD)
    theirs = [p for p in theirs if p.kind != p.VAR_KEYWORD]
    assert [(p.name, p.default, p.kind) for p in ours[: len(theirs)]] == [
        (p.name, p.default, p.kind) for p in theirs
    ]
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in ours[len(theirs) :])
