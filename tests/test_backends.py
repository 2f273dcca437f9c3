"""IDGAugmentation inside a model on Keras' jax backend, as on TensorFlow's: the same
images from the same seeds, trained in the backend's compiled step, a `.keras` file
saved on one backend loaded and trained on the other. (The flows' part is in
test_iterator.py; torch was measured by hand, docs/measurements.)"""

import json

import keras
import numpy as np
import pytest

from rps_tfdata.image import IDGAugmentation

from .helpers import run_python

SETTINGS = dict(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=[1, 3],
    shear_range=20,
    zoom_range=0.2,
    horizontal_flip=True,
    vertical_flip=True,
    channel_shift_range=20,
    brightness_range=(0.7, 1.3),
    fill_mode="reflect",
)
SEEDS = [[7, 1], [7, 2], [9, 2**31 - 1], [0, 5]]  # 32-bit values: jax's integers


def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (4, 24, 20, 3)).astype("float32")


def model_with(layer: keras.layers.Layer) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((24, 20, 3)),
            layer,
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=True)
    return model


# On the other backend: the layer's images for SEEDS, a model with it trained and saved,
# and TensorFlow's saved model loaded and trained; prints what it saw as JSON.
OTHER_BACKEND = """
import json, sys
import keras, numpy as np
from rps_tfdata.image import IDGAugmentation
from tests.test_backends import SEEDS, SETTINGS, images, model_with

out_npy, theirs, ours = sys.argv[1:4]
layer = IDGAugmentation(**SETTINGS)
seeds = keras.ops.convert_to_tensor(np.array(SEEDS, "int32"))
np.save(out_npy, keras.ops.convert_to_numpy(layer(images(), training=True, seed=seeds)))
model = model_with(layer)
trained = model.fit(images(), np.array([0, 1, 2, 0]), epochs=2, verbose=0).history["loss"]
model.save(ours)
loaded = keras.saving.load_model(theirs)
loaded.compile("adam", "sparse_categorical_crossentropy")
again = loaded.fit(images(), np.array([0, 1, 2, 0]), epochs=1, verbose=0).history["loss"]
print("SAW " + json.dumps({"backend": keras.backend.backend(), "fit": trained, "loaded": again}))
"""


@pytest.mark.slow
def test_the_layer_is_the_same_on_jax_and_a_keras_file_crosses_backends(tmp_path):
    layer = IDGAugmentation(**SETTINGS)
    expected = np.asarray(layer(images(), training=True, seed=np.array(SEEDS, "int64")))
    model_with(layer).save(tmp_path / "tensorflow.keras")
    arguments = [str(tmp_path / "jax.npy"), str(tmp_path / "tensorflow.keras")]
    arguments.append(str(tmp_path / "jax.keras"))
    result = run_python(["-c", OTHER_BACKEND, *arguments], env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(out for out in result.stdout.splitlines() if out.startswith("SAW "))
    saw = json.loads(line[4:])
    assert saw["backend"] == "jax" and len(saw["fit"]) == 2 and np.isfinite(saw["loaded"]).all()
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), expected, atol=1e-3)
    loaded = keras.saving.load_model(tmp_path / "jax.keras")  # jax's file, on TensorFlow
    assert isinstance(loaded.layers[0], IDGAugmentation)
    loaded.compile("adam", "sparse_categorical_crossentropy")
    history = loaded.fit(images(), np.array([0, 1, 2, 0]), epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
