"""`from rps_tfdata import image` in place of `from tensorflow.keras.preprocessing import
image`: every public name, with Keras' signature, doing what Keras' does."""

import inspect

import numpy as np
import pytest
from tensorflow.keras.preprocessing import image as keras_image

from rps_tfdata import image

from .helpers import RPS28

KERAS_NAMES = sorted(n for n in dir(keras_image) if not n.startswith("_"))
# The drop-in's own keyword-only additions to Keras' signatures.
OURS_ONLY = {"cache", "cache_dir"}


def noise(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape)


def parameters(function) -> list[tuple[str, object]]:
    return [
        (p.name, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name not in OURS_ONLY
    ]


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_every_public_name_is_here_with_keras_signature(name):
    ours, theirs = getattr(image, name), getattr(keras_image, name)
    if name == "Iterator":  # the class of every flow here; Keras' is a PyDataset to subclass
        assert issubclass(image.DirectoryIterator, image.Iterator)
        return
    assert parameters(ours) == parameters(theirs), name


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(theta=30),
        dict(tx=3, ty=-2),
        dict(shear=20, zx=0.8, zy=1.2),
        dict(theta=-15, tx=1.5, zx=1.1, fill_mode="constant", cval=7.0),
        dict(theta=45, fill_mode="reflect", order=0),
        dict(theta=10, ty=4, fill_mode="wrap"),
        dict(theta=20, row_axis=0, col_axis=1, channel_axis=2),
        dict(zx=0.7, zy=0.9, row_axis=1, col_axis=0, channel_axis=2),
    ],
)
def test_apply_affine_transform_is_keras(kwargs):
    shape = (3, 17, 23) if kwargs.get("channel_axis", 0) == 0 else (17, 23, 3)
    if kwargs.get("col_axis") == 0:
        shape = (23, 17, 3)
    x = noise(shape)
    ours, theirs = (
        image.apply_affine_transform(x, **kwargs),
        keras_image.apply_affine_transform(x, **kwargs),
    )
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, atol=0.02)


def test_the_identity_returns_the_image_itself():
    x = noise((3, 5, 5))
    assert image.apply_affine_transform(x) is x is keras_image.apply_affine_transform(x)


@pytest.mark.parametrize(
    "name, args",
    [
        ("random_rotation", (40,)),
        ("random_shift", (0.2, 0.3)),
        ("random_shear", (30,)),
        ("random_zoom", ((0.7, 1.3),)),
        ("random_channel_shift", (40,)),
    ],
)
def test_random_functions_draw_as_keras_does(name, args):
    x = noise((3, 16, 20), seed=1)
    np.random.seed(5)
    ours = getattr(image, name)(x, *args)
    np.random.seed(5)
    theirs = getattr(keras_image, name)(x, *args)
    np.testing.assert_allclose(ours, theirs, atol=0.02)
    assert not np.allclose(ours, x)


@pytest.mark.parametrize("scale", [True, False])
def test_brightness_is_keras_through_pil(scale):
    for x in (noise((9, 7, 3), seed=2), noise((9, 7, 3), seed=3) * 2 - 100):
        np.random.seed(7)
        ours = image.random_brightness(x, (0.5, 1.5), scale)
        np.random.seed(7)
        theirs = keras_image.random_brightness(x, (0.5, 1.5), scale)
        np.testing.assert_allclose(ours, theirs, atol=1e-3)
    np.testing.assert_allclose(
        image.apply_channel_shift(x, 30.0), keras_image.apply_channel_shift(x, 30.0)
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.random_zoom(np.zeros((3, 4, 4)), (0.5,)), "`zoom_range` should be"),
        (lambda m: m.random_brightness(np.zeros((4, 4, 3)), (0.5,)), "brightness_range should"),
        (lambda m: m.apply_affine_transform(np.zeros((4, 4)), theta=3), "multi-channel 2D"),
        (
            lambda m: m.apply_affine_transform(np.zeros((3, 4, 4)), row_axis=0),
            "must be distinct",
        ),
        (
            lambda m: m.apply_affine_transform(np.zeros((4, 3, 4)), channel_axis=1, row_axis=0),
            "Channels are allowed",
        ),
    ],
)
def test_refusals_are_kerass(call, message):
    for module in (image, keras_image):
        with pytest.raises(ValueError, match=message):
            call(module)


def test_the_iterator_classes_build_the_flows():
    generator = image.ImageDataGenerator(rescale=1 / 255, rotation_range=30)
    keywords = dict(target_size=(28, 28), batch_size=20, seed=4, class_mode="sparse")
    built = image.DirectoryIterator(RPS28, generator, **keywords)
    flowed = generator.flow_from_directory(RPS28, **keywords)
    assert isinstance(flowed, image.DirectoryIterator) and len(built) == len(flowed) == 3
    for (x, y), (u, v) in zip(built, flowed, strict=True):
        np.testing.assert_array_equal(y, v)
        np.testing.assert_array_equal(x, u)
    x = noise((12, 8, 8, 3))
    plain = image.ImageDataGenerator(rescale=1 / 255)
    arrays = image.NumpyArrayIterator(x, np.arange(12), plain, batch_size=5)
    assert isinstance(plain.flow(x, np.arange(12)), image.NumpyArrayIterator)
    first_x, first_y = next(arrays)  # shuffle=False, IDG's default for this class
    np.testing.assert_allclose(first_x, x[:5].astype("float32") / 255, rtol=1e-6)
    assert list(first_y) == [0, 1, 2, 3, 4]
    bare = image.NumpyArrayIterator((x, np.arange(12.0)), None, None, batch_size=5)
    inputs = next(bare)  # no generator: no transform, as IDG's; the inputs alone: a list
    assert isinstance(inputs, list) and np.array_equal(inputs[0], x[:5].astype("float32"))


@pytest.mark.parametrize(
    "x, y, weights",
    [
        (np.zeros((4, 5, 5, 3)), np.zeros(3), None),
        ((np.zeros((4, 5, 5, 3)), np.zeros(3)), None, None),
        (np.zeros((4, 5, 5, 3)), np.zeros(4), np.zeros(2)),
        (np.zeros((4, 5, 5)), None, None),
    ],
)
def test_a_flow_of_arrays_refuses_in_idgs_words(x, y, weights):
    said = []
    for generator in (image.ImageDataGenerator(), keras_image.ImageDataGenerator()):
        with pytest.raises(ValueError) as refused:
            generator.flow(x, y, sample_weight=weights)
        said.append(str(refused.value))
    assert said[0] == said[1]
