"""A flow answers as IDG's iterator (`next`, `[i]`, `len`, `reset`, `on_epoch_end`, NumPy
batches) and stays a dataset Keras reads in the graph, on every backend and strategy."""

import json
import sys

import numpy as np
import pytest
from tensorflow.keras.preprocessing.image import ImageDataGenerator as KerasIDG

from rps_tfdata.image import ImageDataGenerator
from rps_tfdata.trainer.config import SEED_AUGMENTATION

from .helpers import RPS28, run_python

KEYWORDS = dict(target_size=(28, 28), batch_size=16, class_mode="sparse")


def flow(seed=3, **changes):
    generator = ImageDataGenerator(rescale=1 / 255, **SEED_AUGMENTATION)
    return generator.flow_from_directory(RPS28, seed=seed, **{**KEYWORDS, **changes})


def same(first, second) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_next_walks_pass_after_pass_as_idgs_next_does():
    ours = flow()
    batches = [next(ours) for _ in range(len(ours) + 1)]  # a whole pass, then one more
    assert len(ours) == 4 and [len(y) for _, y in batches] == [16, 16, 16, 12, 16]
    labels = np.concatenate([y for _, y in batches[:4]])
    assert sorted(labels) == sorted(ours.classes)  # each image once in a pass
    assert not np.array_equal(batches[4][1], batches[0][1])  # the next pass: a new order
    assert (ours.batch_index, ours.total_batches_seen) == (1, 5)
    again = flow()
    assert all(same(b, next(again)) for b in batches)  # the same seed, the same passes
    assert not same(batches[0], next(flow(seed=4)))


def test_an_index_is_a_batch_of_the_current_pass_and_past_the_end_idgs_error():
    ours = flow()
    walked = [next(ours) for _ in range(3)]
    assert same(ours[0], walked[0]) and same(ours[2], walked[2])
    theirs = KerasIDG().flow_from_directory(RPS28, **KEYWORDS)
    for iterator in (ours, theirs):
        with pytest.raises(
            ValueError, match="Asked to retrieve element 4, but the Sequence has length 4"
        ):
            iterator[4]
    ours.reset()
    assert ours.batch_index == 0 and same(next(ours), walked[0])
    ours.on_epoch_end()
    assert not same(next(ours), walked[0])


def test_indexes_asked_in_order_read_one_pass_and_give_the_batches_asked_alone():
    """`flow[i]` for i in order (a Sequence's habit) reads on in one pass instead of
    building a pass for each batch (0.7-0.8 s each at 96 px); any other index builds
    its own, and every index gives the same batch either way."""
    ours = flow()
    built = []
    reader = ours._indexed  # (the private reader of `flow[i]`'s passes)
    one_pass = reader._one_pass
    reader._one_pass = lambda *args: built.append(args) or one_pass(*args)
    in_order = [ours[i] for i in range(len(ours))]
    assert len(built) == 1
    assert same(ours[2], in_order[2]) and same(ours[1], in_order[1]) and len(built) == 3
    assert same(ours[2], in_order[2]) and len(built) == 3  # (read on from index 1)
    ours.on_epoch_end()
    assert not same(ours[0], in_order[0]) and len(built) == 4  # a new pass


def test_a_script_gets_numpy_batches_as_from_idg():
    generator = ImageDataGenerator()
    x = np.random.default_rng(0).uniform(0, 255, (10, 28, 28, 1)).astype("float32")
    misc = np.arange(10, dtype="float32")
    for batch_x, batch_y in generator.flow((x, misc), np.arange(10), batch_size=4, seed=1):
        assert isinstance(batch_x, list) and isinstance(batch_x[0], np.ndarray)
        images = batch_x[0]
        assert type(images[0]) is np.ndarray and images[0].reshape(28, 28).shape == (28, 28)
        images /= 255.0  # in place, as scripts do
        assert images.astype("uint8").dtype == np.uint8 and isinstance(batch_y, np.ndarray)
    ours = next(generator.flow(x, batch_size=4, shuffle=False))
    theirs = next(KerasIDG().flow(x, batch_size=4, shuffle=False))
    assert type(ours) is type(theirs) and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


# Trains, evaluates and predicts through a flow, counting the rows each step saw (a
# metric, so that it counts inside the compiled steps); prints them as JSON.
SEEN = """
import json, os, sys
import keras, numpy as np
from rps_tfdata.image import ImageDataGenerator

class Seen(keras.metrics.Metric):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows = self.add_variable(shape=(), initializer="zeros", name="rows")
    def update_state(self, y_true, y_pred, sample_weight=None):
        self.rows.assign_add(keras.ops.cast(keras.ops.shape(y_true)[0], "float32"))
    def result(self):
        return keras.ops.convert_to_tensor(self.rows)

def build():
    model = keras.Sequential([keras.Input((28, 28, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[Seen(name="seen")])
    return model

if sys.argv[2] == "mirrored":  # two logical CPUs, before TensorFlow starts
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
        model = build()
else:
    model = build()
generator = ImageDataGenerator(rescale=1 / 255, rotation_range=40, horizontal_flip=True)
flow = generator.flow_from_directory(sys.argv[1], target_size=(28, 28), batch_size=16,
                                     class_mode="sparse", seed=1)
first = next(flow)  # a script's look at a batch does not change what Keras reads
history = model.fit(flow, epochs=3, verbose=0).history
seen = {"backend": keras.backend.backend(), "fit": history["seen"],
        "evaluate": model.evaluate(flow, verbose=0, return_dict=True)["seen"],
        "predict": len(model.predict(flow, verbose=0)), "first": len(first[1])}
print("SEEN " + json.dumps(seen))
"""


def seen_of(output: str) -> dict:
    return json.loads(next(line for line in output.splitlines() if line.startswith("SEEN "))[5:])


def check_seen(seen: dict, backend: str) -> None:
    assert seen["backend"] == backend
    assert seen["fit"] == [60.0, 60.0, 60.0] and seen["evaluate"] == 60.0
    assert seen["predict"] == 60 and seen["first"] == 16


def test_keras_reads_every_batch_of_every_pass_in_the_graph(monkeypatch, capsys):
    """Keras' TensorFlow trainer reads the dataset inside its compiled step (a Python
    iterator there would be read once, when the step is traced): every image of every
    pass is counted there, and a script's `next` before does not change it."""
    monkeypatch.setattr(sys, "argv", ["seen", RPS28, "default"])
    exec(compile(SEEN, "seen", "exec"), {"__name__": "seen"})
    check_seen(seen_of(capsys.readouterr().out), "tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize("backend, strategy", [("tensorflow", "mirrored"), ("jax", "default")])
def test_fit_evaluate_and_predict_see_every_image_of_every_pass(backend, strategy):
    env = {"KERAS_BACKEND": backend}
    result = run_python(["-c", SEEN, RPS28, strategy], env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    check_seen(seen_of(result.stdout), backend)


def test_an_empty_flow_is_idgs_empty_flow_and_says_what_to_do(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    theirs = KerasIDG().flow_from_directory(str(tmp_path), target_size=(8, 8))
    with pytest.warns(UserWarning, match="holds no readable image file: check the path"):
        ours = ImageDataGenerator(rotation_range=10).flow_from_directory(
            str(tmp_path), target_size=(8, 8)
        )
    assert (len(ours), ours.n, ours.class_indices) == (0, 0, theirs.class_indices)
    for (x, y), (u, v) in [(next(ours), next(theirs))]:
        assert (x.shape, y.shape) == (u.shape, v.shape) == ((0, 8, 8, 3), (0, 2))
    for iterator in (ours, theirs):
        with pytest.raises(ValueError, match="element 0, but the Sequence has length 0"):
            iterator[0]
    assert list(ours) == []


def test_dataframe_keywords_keras_deprecated_warn_as_idgs_and_do_nothing(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"filename": [f"{c}/{c}01-000.png" for c in ("rock", "paper")]})
    frame["class"] = ["rock", "paper"]
    keywords = dict(target_size=(8, 8), has_ext=True, sort=False, drop_duplicates=False)
    with pytest.warns(DeprecationWarning) as ours:
        flow = ImageDataGenerator().flow_from_dataframe(frame, RPS28, **keywords)
    with pytest.warns(DeprecationWarning) as theirs:
        KerasIDG().flow_from_dataframe(frame, RPS28, **keywords)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert flow.n == 2
