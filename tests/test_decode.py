"""Reading one file as IDG's `load_img` does, for every `color_mode`, `interpolation` and
`keep_aspect_ratio`: pixel for pixel against Keras' own loader (PIL) on the same files."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.keras.preprocessing.image import img_to_array, load_img

from rps_tfdata.pipeline.options import COLOR_MODES
from rps_tfdata.pipeline.reading import decode, pil_resize

# Sources smaller and larger than the target, not multiples of it, of other aspect ratios;
# (260, 125) shrinks the height by more than twice the width (Pillow 13: vertical first).
SIZES = [(97, 203), (300, 300), (40, 33), (180, 160), (12, 500), (260, 125)]
TARGET = (150, 120)


def noise(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same noise saved in each of PIL's modes a user's folder holds: RGB, RGBA, grey,
    grey with alpha, palette, and JPEG (PIL and TensorFlow must decode it alike)."""
    folder = tmp_path_factory.mktemp("modes")
    paths = []
    for k, (height, width) in enumerate(SIZES):
        rgba = noise((height, width, 4), seed=k)
        images = {
            "RGB.png": Image.fromarray(rgba[..., :3], "RGB"),
            "RGBA.png": Image.fromarray(rgba, "RGBA"),
            "L.png": Image.fromarray(rgba[..., 0], "L"),
            "LA.png": Image.fromarray(rgba[..., :2], "LA"),
            "P.png": Image.fromarray(rgba[..., :3], "RGB").convert("P", palette=Image.ADAPTIVE),
            "RGB.jpg": Image.fromarray(rgba[..., :3], "RGB"),
        }
        for name, image in images.items():
            path = str(folder / f"{height}x{width}-{name}")
            image.save(path)
            paths.append(path)
    return paths


def idg_pixels(path, **keywords):
    return img_to_array(load_img(path, target_size=TARGET, **keywords))


def ours(path, interpolation="nearest", color_mode="rgb", keep_aspect_ratio=False):
    image = decode.load_image(
        tf.constant(path),
        TARGET,
        f"pil_{interpolation}",
        color_mode=color_mode,
        keep_aspect_ratio=keep_aspect_ratio,
    )
    return image.numpy()


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
def test_each_color_mode_equals_idgs_loader(files, color_mode):
    for path in files:
        expected = idg_pixels(path, color_mode=color_mode)
        got = ours(path, color_mode=color_mode)
        assert got.shape == expected.shape == (*TARGET, COLOR_MODES[color_mode])
        np.testing.assert_array_equal(got.astype(np.float32), expected, err_msg=path)


@pytest.mark.parametrize("interpolation", pil_resize.METHODS)
@pytest.mark.parametrize("keep_aspect_ratio", [False, True])
def test_each_interpolation_and_crop_equals_idgs_loader(files, interpolation, keep_aspect_ratio):
    """PIL's arithmetic bit for bit: 22-bit coefficients, the 8-bit clip after each
    pass, premultiplied alpha for RGBA, and the centred crop box."""
    for path in files[::2]:
        for color_mode in ("rgb", "rgba"):
            keywords = {
                "interpolation": interpolation,
                "color_mode": color_mode,
                "keep_aspect_ratio": keep_aspect_ratio,
            }
            expected = idg_pixels(path, **keywords)
            got = ours(path, **keywords)
            np.testing.assert_array_equal(got.astype(np.float32), expected, err_msg=str(keywords))


def test_the_resize_runs_inside_a_dataset_map(files):
    dataset = tf.data.Dataset.from_tensor_slices(files[:4]).map(
        lambda path: decode.load_image(path, TARGET, "pil_lanczos", keep_aspect_ratio=True)
    )
    for path, image in zip(files[:4], dataset, strict=True):
        np.testing.assert_array_equal(image.numpy(), ours(path, "lanczos", keep_aspect_ratio=True))


def test_an_image_already_at_the_target_size_is_left_alone():
    image = noise((*TARGET, 3), seed=9)
    for method in pil_resize.METHODS:
        for crop in (False, True):
            resized = decode.resize(
                tf.constant(image), TARGET, f"pil_{method}", keep_aspect_ratio=crop
            )
            np.testing.assert_array_equal(resized.numpy(), image, err_msg=method)


def test_unknown_color_mode_and_interpolation_say_what_was_received():
    """The library's refusals are the drop-in's: IDG's words, wherever they are met."""
    contents = tf.io.encode_png(noise((8, 8, 3)))
    with pytest.raises(ValueError, match="Invalid color mode: cmyk"):
        decode.decode_image(contents, "cmyk")
    with pytest.raises(ValueError, match="Received: 'pil_cubic'"):
        decode.resize(tf.constant(noise((9, 9, 3))), (4, 4), "pil_cubic")
    with pytest.raises(ValueError, match="Invalid interpolation method 'cubic'"):
        pil_resize.resize(tf.constant(noise((9, 9, 3))), (4, 4), "cubic")
