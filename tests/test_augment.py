"""IDGAugmentation against ImageDataGenerator's own apply_transform and sampler."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from tensorflow.keras.preprocessing.image import ImageDataGenerator

from rps_tfdata.bench import seed_reference
from rps_tfdata.core.augment import PARAMETER_KEYS, IDGAugmentation, compose_matrices, warp_gather

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
    return {key: np.array([float(params[key])]) for key in PARAMETER_KEYS}


@pytest.mark.parametrize("shape", [(150, 150, 3), (48, 80, 3), (81, 37, 3)])
def test_transform_equals_idg_apply_transform_on_noise(shape):
    rng = np.random.default_rng(7)
    image = rng.uniform(0, 255, shape).astype(np.float32)
    layer = IDGAugmentation()
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
    layer = IDGAugmentation()
    for seed in range(15):
        params = SEED_IDG.get_random_transform(image.shape, seed=100 + seed)
        expected = SEED_IDG.apply_transform(image, params)
        ours = layer.transform(image[None], as_batch(params))[0]
        assert np.abs(ours - expected).max() < TOLERANCE, params


def test_transform_equals_idg_on_real_image_with_strong_parameters():
    image = real_image((150, 150))
    layer = IDGAugmentation()
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
    params = IDGAugmentation().get_random_transformation(8, (40, 56), tf.constant([3, 4]))
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
    layer = IDGAugmentation()
    base = {
        "theta": 0.0,
        "tx": 0.0,
        "ty": 0.0,
        "shear": 0.0,
        "zx": 1.0,
        "zy": 1.0,
        "flip_horizontal": 0,
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
    ]:
        changed = layer.transform(image[None], as_batch({**base, key: value}))[0]
        assert np.abs(changed - image).max() > 1.0, key


def test_sample_parameters_keys_units_and_ranges():
    params = IDGAugmentation().sample_parameters(5000, image_size=(150, 100), seed=3)
    assert set(params) == set(PARAMETER_KEYS)
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
    ours = IDGAugmentation().sample_parameters(n, image_size=(150, 150), seed=11)
    np.random.seed(5)
    theirs = [SEED_IDG.get_random_transform((150, 150, 3)) for _ in range(n)]
    for key in ("theta", "tx", "ty", "shear", "zx", "zy"):
        result = stats.ks_2samp(ours[key], [float(t[key]) for t in theirs])
        assert result.pvalue > 0.001, (key, result)


def test_seeded_sampling_repeats_and_differs_by_seed():
    layer = IDGAugmentation()
    first = layer.sample_parameters(4, seed=1)
    np.testing.assert_array_equal(first["theta"], layer.sample_parameters(4, seed=1)["theta"])
    assert not np.array_equal(first["theta"], layer.sample_parameters(4, seed=2)["theta"])


def test_inference_is_identity_and_training_changes_images():
    images = tf.constant(real_image((48, 48))[None].repeat(2, axis=0))
    layer = IDGAugmentation(seed=0)
    np.testing.assert_array_equal(layer(images, training=False).numpy(), images.numpy())
    augmented = layer(images, training=True).numpy()
    assert augmented.shape == images.shape
    assert not np.allclose(augmented[0], augmented[1])  # each image its own parameters


def test_works_inside_dataset_map_with_stateless_seeds():
    layer = IDGAugmentation()
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
        ({"rotation_range": -1}, "rotation_range"),
        ({"zoom_range": 1.5}, "zoom_range"),
        ({"zoom_range": (1.2, 0.8)}, "zoom_range"),
        ({"fill_mode": "mirror"}, "fill_mode"),
    ],
)
def test_invalid_arguments_say_what_was_received(kwargs, message):
    with pytest.raises(ValueError, match=f"Received: {message}="):
        IDGAugmentation(**kwargs)


def test_device_path_equals_host_path_for_the_same_seed():
    """The same layer in a tf.data map (host) and in an XLA-compiled step (device)."""
    layer = IDGAugmentation()
    images = tf.constant(real_image((64, 64))[None].repeat(4, axis=0))
    seed = tf.constant([9, 1], tf.int64)
    host = next(iter(tf.data.Dataset.from_tensors(images).map(lambda x: layer(x, seed=seed))))

    @tf.function(jit_compile=True)
    def train_step_like(x):
        return layer(x, training=True, seed=seed) * 1.0

    device = train_step_like(images)
    np.testing.assert_allclose(device.numpy(), host.numpy(), atol=1e-3)
    assert np.abs(host.numpy() - images.numpy()).max() > 1  # it did transform


def test_uncompiled_stock_op_path_equals_compiled_gather_path():
    images = tf.constant(real_image((64, 64))[None].repeat(3, axis=0))
    seed = tf.constant([7, 7], tf.int64)
    compiled = IDGAugmentation(jit_compile=True)(images, training=True, seed=seed)
    stock = IDGAugmentation(jit_compile=False)(images, training=True, seed=seed)
    np.testing.assert_allclose(compiled.numpy(), stock.numpy(), atol=0.01)
