"""IDGAugmentation against ImageDataGenerator's own apply_transform and sampler."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from tensorflow.keras.preprocessing.image import ImageDataGenerator

from rps_tfdata.bench import seed_reference
from rps_tfdata.pipeline.transforms.augment import PARAMETER_KEYS, IDGAugmentation
from rps_tfdata.pipeline.transforms.warp import GEOMETRY_KEYS, compose_matrices, warp_gather
from rps_tfdata.trainer.config import SEED_AUGMENTATION

from .helpers import RPS28

SEED_IDG = ImageDataGenerator(**seed_reference.SEED_AUGMENTATION)
# Both sides compute in float64 matrices and float32 pixels; the warp's float32 source
# coordinates differ from scipy's float64 ones by about 1e-5 px, which on 0..255 noise
# (neighbouring pixels up to 255 apart) moves a value by up to about 0.01.
TOLERANCE = 0.02


def real_image(size, name="rock/rock01-000.png"):
    """A real RPS image from rps28, upscaled bilinearly, as float on 0..255."""
    path = os.path.join(RPS28, name)
    image = tf.io.decode_png(tf.io.read_file(path), channels=3)
    return tf.image.resize(tf.cast(image, tf.float32), size).numpy()


def as_batch(params):
    """IDG's parameters of one image as a batch of one; IDG's None means "not applied"."""
    return {key: np.array([float(value)]) for key, value in params.items() if value is not None}


@pytest.mark.parametrize("shape", [(150, 150, 3), (48, 80, 3), (81, 37, 3)])
def test_transform_equals_idg_apply_transform_on_noise(shape):
    rng = np.random.default_rng(7)
    image = rng.uniform(0, 255, shape).astype(np.float32)
    layer = IDGAugmentation(**SEED_AUGMENTATION)
    for seed in range(40):
        params = SEED_IDG.get_random_transform(shape, seed=seed)
        expected = SEED_IDG.apply_transform(image, params)
        ours = layer.transform(image[None], as_batch(params))[0]
        assert np.abs(ours - expected).max() < TOLERANCE, params


@pytest.mark.parametrize(
    "name", ["paper/paper01-000.png", "rock/rock02-050.png", "scissors/scissors03-100.png"]
)
def test_transform_equals_idg_on_real_images_with_idg_parameters(name):
    image = real_image((150, 150), name)
    layer = IDGAugmentation(**SEED_AUGMENTATION)
    for seed in range(15):
        params = SEED_IDG.get_random_transform(image.shape, seed=100 + seed)
        expected = SEED_IDG.apply_transform(image, params)
        ours = layer.transform(image[None], as_batch(params))[0]
        assert np.abs(ours - expected).max() < TOLERANCE, params


def test_transform_equals_idg_on_real_image_with_strong_parameters():
    image = real_image((150, 150))
    layer = IDGAugmentation(**SEED_AUGMENTATION)
    strong = {
        "theta": 33.0,
        "tx": -20.0,
        "ty": 11.5,
        "shear": 25.0,
        "zx": 0.7,
        "zy": 1.3,
        "flip_horizontal": 1,
    }
    expected = SEED_IDG.apply_transform(image, {**strong, "flip_vertical": 0})
    ours = layer.transform(image[None], as_batch(strong))[0]
    assert np.abs(ours - expected).max() < TOLERANCE


def test_gather_warp_equals_the_stock_projective_op():
    images = tf.constant(np.random.default_rng(2).uniform(0, 255, (8, 40, 56, 3)), tf.float32)
    params = IDGAugmentation(**SEED_AUGMENTATION).get_random_transformation(
        8, (40, 56), tf.constant([3, 4])
    )
    matrices = compose_matrices(params, (40, 56))
    stock = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(tf.reshape(matrices, [-1, 9])[:, :8], tf.float32),
        output_shape=[40, 56],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    # Float32 coordinates rounded in another order: up to ~1e-5 px, times noise gradients.
    np.testing.assert_allclose(warp_gather(images, matrices).numpy(), stock.numpy(), atol=0.01)
    compiled = tf.function(warp_gather, jit_compile=True)(images, matrices)
    np.testing.assert_allclose(compiled.numpy(), stock.numpy(), atol=0.01)


def test_each_parameter_matters():
    """A broken unit (radians for degrees, no flip) would not pass the tests above."""
    image = real_image((64, 64))
    layer = IDGAugmentation(**SEED_AUGMENTATION)
    base = {
        "theta": 0.0,
        "tx": 0.0,
        "ty": 0.0,
        "shear": 0.0,
        "zx": 1.0,
        "zy": 1.0,
        "flip_horizontal": 0,
        "flip_vertical": 0,
    }
    identity = layer.transform(image[None], as_batch(base))[0]
    np.testing.assert_allclose(identity, image, atol=1e-3)
    for key, value in [
        ("theta", 10.0),
        ("tx", 3.0),
        ("ty", 3.0),
        ("shear", 10.0),
        ("zx", 1.2),
        ("zy", 0.8),
        ("flip_horizontal", 1),
        ("flip_vertical", 1),
    ]:
        changed = layer.transform(image[None], as_batch({**base, key: value}))[0]
        assert np.abs(changed - image).max() > 1.0, key


def test_sample_parameters_keys_units_and_ranges():
    params = IDGAugmentation(**SEED_AUGMENTATION).sample_parameters(
        5000, image_size=(150, 100), seed=3
    )
    assert set(params) == set(GEOMETRY_KEYS)  # no channel shift or brightness in the seed's
    assert all(v.shape == (5000,) for v in params.values())
    assert -40 <= params["theta"].min() < -39 and 39 < params["theta"].max() <= 40
    assert -30 <= params["tx"].min() < -29 and 29 < params["tx"].max() <= 30  # 0.2 * height
    assert -20 <= params["ty"].min() < -19 and 19 < params["ty"].max() <= 20  # 0.2 * width
    assert -0.2 <= params["shear"].min() and params["shear"].max() <= 0.2
    assert 0.8 <= min(params["zx"].min(), params["zy"].min())
    assert max(params["zx"].max(), params["zy"].max()) <= 1.2
    assert set(np.unique(params["flip_horizontal"])) == {0.0, 1.0}
    assert abs(params["flip_horizontal"].mean() - 0.5) < 0.03
    assert abs(np.corrcoef(params["zx"], params["zy"])[0, 1]) < 0.05


def test_sample_parameters_match_idg_distributions():
    n = 2000
    ours = IDGAugmentation(**SEED_AUGMENTATION).sample_parameters(n, image_size=(150, 150), seed=11)
    np.random.seed(5)
    theirs = [SEED_IDG.get_random_transform((150, 150, 3)) for _ in range(n)]
    for key in ("theta", "tx", "ty", "shear", "zx", "zy"):
        result = stats.ks_2samp(ours[key], [float(t[key]) for t in theirs])
        assert result.pvalue > 0.001, (key, result)


def test_seeded_sampling_repeats_and_differs_by_seed():
    layer = IDGAugmentation(**SEED_AUGMENTATION)
    first = layer.sample_parameters(4, seed=1)
    np.testing.assert_array_equal(first["theta"], layer.sample_parameters(4, seed=1)["theta"])
    assert not np.array_equal(first["theta"], layer.sample_parameters(4, seed=2)["theta"])


def test_inference_is_identity_and_training_changes_images():
    images = tf.constant(real_image((48, 48))[None].repeat(2, axis=0))
    layer = IDGAugmentation(**SEED_AUGMENTATION, seed=0)
    np.testing.assert_array_equal(layer(images, training=False).numpy(), images.numpy())
    augmented = layer(images, training=True).numpy()
    assert augmented.shape == images.shape
    assert not np.allclose(augmented[0], augmented[1])  # each image its own parameters


def test_works_inside_dataset_map_with_stateless_seeds():
    layer = IDGAugmentation(**SEED_AUGMENTATION)
    images = tf.constant(real_image((48, 48))[None].repeat(3, axis=0))
    seed = tf.constant([4, 2], tf.int64)
    dataset = tf.data.Dataset.from_tensors(images).map(lambda x: layer(x, training=True, seed=seed))
    from_map = next(iter(dataset)).numpy()
    eager = layer(images, training=True, seed=seed).numpy()
    np.testing.assert_allclose(from_map, eager, atol=1e-4)


def test_config_round_trip_and_model_serialization(tmp_path):
    layer = IDGAugmentation(rotation_range=10, zoom_range=(0.9, 1.3), horizontal_flip=False)
    clone = IDGAugmentation.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((48, 48, 3)), layer])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[0].get_config()["zoom_range"] == [0.9, 1.3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rotation_range": float("nan")}, "rotation_range"),
        ({"zoom_range": (0.8, 1.0, 1.2)}, "zoom_range"),
        ({"zoom_range": "0.2"}, "zoom_range"),
        ({"width_shift_range": "0.2"}, "width_shift_range"),
        ({"height_shift_range": []}, "height_shift_range"),
        ({"brightness_range": 0.5}, "brightness_range"),
        ({"fill_mode": "mirror"}, "fill_mode"),
        ({"interpolation_order": 3}, "interpolation_order"),
    ],
)
def test_invalid_arguments_say_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=f"Received: {message}="):
        IDGAugmentation(**kwargs)


def test_device_path_equals_host_path_for_the_same_seed():
    """The same layer in a tf.data map (host) and in an XLA-compiled step (device)."""
    layer = IDGAugmentation(**SEED_AUGMENTATION)
    images = tf.constant(real_image((64, 64))[None].repeat(4, axis=0))
    seed = tf.constant([9, 1], tf.int64)
    host = next(
        iter(tf.data.Dataset.from_tensors(images).map(lambda x: layer(x, training=True, seed=seed)))
    )

    @tf.function(jit_compile=True)
    def train_step_like(x):
        return layer(x, training=True, seed=seed) * 1.0

    device = train_step_like(images)
    np.testing.assert_allclose(device.numpy(), host.numpy(), atol=1e-3)
    assert np.abs(host.numpy() - images.numpy()).max() > 1  # it did transform


def test_uncompiled_stock_op_path_equals_compiled_gather_path():
    images = tf.constant(real_image((64, 64))[None].repeat(3, axis=0))
    seed = tf.constant([7, 7], tf.int64)
    compiled = IDGAugmentation(**SEED_AUGMENTATION, jit_compile=True)(
        images, training=True, seed=seed
    )
    stock = IDGAugmentation(**SEED_AUGMENTATION, jit_compile=False)(
        images, training=True, seed=seed
    )
    np.testing.assert_allclose(compiled.numpy(), stock.numpy(), atol=0.01)


# ---- every keyword of ImageDataGenerator's augmentation, against IDG itself ----------

STRONG = dict(
    rotation_range=40,
    width_shift_range=0.4,
    height_shift_range=0.4,
    shear_range=20,
    zoom_range=(0.5, 1.5),
    horizontal_flip=True,
    vertical_flip=True,
)


def against_idg(keywords, image, seeds=range(12)):
    """(ours, IDG's) outputs of `image` for parameters IDG draws, with the same keywords."""
    idg = ImageDataGenerator(**keywords)
    layer = IDGAugmentation(**keywords)
    for seed in seeds:
        params = idg.get_random_transform(image.shape, seed=seed)
        expected = idg.apply_transform(image.copy(), params)
        yield layer.transform(image[None], as_batch(params))[0], expected, params


@pytest.mark.parametrize("fill_mode", ["nearest", "constant", "reflect", "wrap"])
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("jit_compile", [True, False])
def test_each_fill_mode_and_interpolation_order_equals_idg(fill_mode, order, jit_compile):
    """Strong warps on a non-square image show every border rule (scipy's own reading of
    each mode, with `cval`) and both interpolation orders; compiled or not."""
    image = np.random.default_rng(4).uniform(0, 255, (48, 80, 3)).astype(np.float32)
    keywords = {**STRONG, "fill_mode": fill_mode, "cval": 77.0, "interpolation_order": order}
    idg = ImageDataGenerator(**keywords)
    layer = IDGAugmentation(**keywords, jit_compile=jit_compile)
    for seed in range(12):
        params = idg.get_random_transform(image.shape, seed=seed)
        expected = idg.apply_transform(image.copy(), params)
        ours = layer.transform(image[None], as_batch(params))[0]
        assert np.abs(ours - expected).max() < TOLERANCE, (fill_mode, order, params)


def test_cval_fills_the_constant_border_and_nothing_else():
    image = np.full((40, 40, 3), 10.0, np.float32)
    layer = IDGAugmentation(fill_mode="constant", cval=200.0, width_shift_range=0.5)
    out = layer.transform(image[None], {"ty": np.array([15.0])})[0]
    assert set(np.unique(out)) == {10.0, 200.0}


def test_vertical_flip_is_idgs_mirror_of_rows():
    image = real_image((40, 56))
    layer = IDGAugmentation(vertical_flip=True)
    flipped = layer.transform(image[None], {"flip_vertical": np.array([1.0])})[0]
    np.testing.assert_array_equal(flipped, image[::-1])


@pytest.mark.parametrize("channel_shift_range", [30.0, 300.0])
def test_channel_shift_equals_idg(channel_shift_range):
    image = real_image((48, 48))
    keywords = {"channel_shift_range": channel_shift_range}
    for ours, expected, params in against_idg(keywords, image):
        np.testing.assert_allclose(ours, expected, atol=1e-4, err_msg=str(params))


@pytest.mark.parametrize(
    "extra", [{}, {"channel_shift_range": 300.0}, {"rescale_first": -1.0}], ids=str
)
def test_brightness_equals_idg_pixel_for_pixel(extra):
    """IDG's brightness goes through PIL's 8-bit image: the same truncations here, so
    the same values exactly on the same input; with a channel shift first (values past
    255: stretched to 8 bits and back), and on values below 0."""
    extra = dict(extra)
    scale = extra.pop("rescale_first", 1.0)
    image = real_image((48, 48)) * scale
    keywords = {"brightness_range": (0.2, 1.8), **extra}
    for ours, expected, params in against_idg(keywords, image, seeds=range(20)):
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-4, err_msg=str(params))


def test_every_keyword_at_once_equals_idg():
    """The whole chain (warp with flips, channel shift, brightness) on a real image: the
    warp's float rounding can move a pixel across an 8-bit boundary before the brightness
    truncates, so a few pixels may differ by one level times the factor."""
    image = real_image((64, 64))
    keywords = {
        **STRONG,
        "channel_shift_range": 40.0,
        "brightness_range": (0.5, 1.5),
        "fill_mode": "reflect",
    }
    for ours, expected, params in against_idg(keywords, image):
        difference = np.abs(ours - expected)
        assert difference.max() <= 1.5 * 1 + 0.01, params
        assert (difference > 0.01).mean() < 0.01, params


@pytest.mark.parametrize(
    "shift_range, values",
    [
        (5, {-4, -3, -2, -1, 0, 1, 2, 3, 4}),  # an int N: 0..N-1 pixels, either sign
        ([2, 7], {-7, -2, 2, 7}),  # a list: one of its values, either sign
        ([0.1, 0.25], {-0.25 * 40, -0.1 * 40, 0.1 * 40, 0.25 * 40}),  # fractions of 40
        (12.0, None),  # a float of 1 or more: pixels, uniform
    ],
)
def test_shift_ranges_are_read_as_idg_reads_them(shift_range, values):
    keywords = {"height_shift_range": shift_range, "width_shift_range": shift_range}
    ours = IDGAugmentation(**keywords).sample_parameters(4000, image_size=(40, 40), seed=2)
    idg = ImageDataGenerator(**keywords)
    np.random.seed(3)
    theirs = [idg.get_random_transform((40, 40, 3)) for _ in range(4000)]
    for key in ("tx", "ty"):
        mine, idgs = ours[key], np.array([float(t[key]) for t in theirs])
        if values is None:
            assert stats.ks_2samp(mine, idgs).pvalue > 0.001
            assert 11 < np.abs(mine).max() <= 12
            continue
        assert set(np.round(mine, 6)) == set(np.round(idgs, 6)) == values
        counts = [(np.round(mine, 6) == v).sum() for v in sorted(values)]
        theirs_counts = [(np.round(idgs, 6) == v).sum() for v in sorted(values)]
        assert (
            stats.chisquare(counts, np.array(theirs_counts) * 4000 / sum(theirs_counts)).pvalue
            > 0.001
        )


def test_new_parameters_match_idg_distributions():
    keywords = {"channel_shift_range": 30.0, "brightness_range": (0.4, 1.3), "vertical_flip": True}
    n = 2000
    ours = IDGAugmentation(**keywords).sample_parameters(n, seed=5)
    assert set(ours) == set(PARAMETER_KEYS)
    idg = ImageDataGenerator(**keywords)
    np.random.seed(6)
    theirs = [idg.get_random_transform((150, 150, 3)) for _ in range(n)]
    for key in ("channel_shift_intensity", "brightness"):
        result = stats.ks_2samp(ours[key], [float(t[key]) for t in theirs])
        assert result.pvalue > 0.001, (key, result)
    assert abs(ours["flip_vertical"].mean() - 0.5) < 0.04
    assert not ours["flip_horizontal"].any()


def test_a_layer_with_no_geometry_never_resamples():
    """IDG leaves an image alone when nothing geometric is asked (no scipy call): so does
    the layer, so a brightness-only or channel-shift-only setting keeps the pixels."""
    image = real_image((32, 32))
    layer = IDGAugmentation(channel_shift_range=0.0)
    assert not layer.warps
    np.testing.assert_array_equal(layer(image[None], training=True).numpy()[0], image)
    assert IDGAugmentation(horizontal_flip=True).warps


def test_settings_never_share_a_compiled_function():
    """The function cache is keyed by the whole config: two layers that differ in any
    setting (here one added after the cache was written: cval) augment differently."""
    images = tf.constant(np.full((2, 24, 24, 3), 100.0, np.float32))
    seed = tf.constant([1, 2], tf.int64)
    keywords = {"fill_mode": "constant", "width_shift_range": 0.5}
    dark = IDGAugmentation(**keywords, cval=0.0)(images, training=True, seed=seed).numpy()
    light = IDGAugmentation(**keywords, cval=255.0)(images, training=True, seed=seed).numpy()
    assert dark.min() == 0.0 and light.max() == 255.0
