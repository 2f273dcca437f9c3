"""One real train step on a tiny model, against the gradient computed by hand: on one
device, on two replicas (two logical CPUs), and on a padding batch of no image."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from rps_tfdata.trainer import distribution, loop

CLASSES = 3
RNG = np.random.default_rng(7)
IMAGES = RNG.integers(0, 256, (5, 2, 2, 1), dtype=np.uint8)  # 5 images of 4 pixels, as fed
LABELS = np.eye(CLASSES, dtype=np.float32)[[0, 2, 1, 1, 0]]
KERNEL = RNG.normal(size=(4, CLASSES)).astype(np.float32)


def tiny_model() -> keras.Model:
    """Flatten, then a softmax layer with known weights: gradients easy to write down."""
    inputs = keras.Input((2, 2, 1))
    dense = keras.layers.Dense(CLASSES, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([KERNEL, np.zeros(CLASSES, np.float32)])
    return model


def steps_on(strategy, loss=None):
    """The model, and the steps with plain SGD at rate 1: one step moves each weight by
    minus its gradient. `loss`: the recipe's `loop.TrainingLoss`."""
    with strategy.scope():
        model = tiny_model()
        optimizer = keras.optimizers.SGD(learning_rate=1.0)
        optimizer.build(model.trainable_variables)
    return model, loop.make_steps(model, optimizer, strategy=strategy, loss=loss)


def probabilities_of(images):
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    logits = x @ KERNEL
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return x, p / p.sum(axis=1, keepdims=True)


def mean_loss_gradient(images, labels, weights=None, smoothing=0.0):
    """d(mean weighted cross-entropy against smoothed labels)/d(kernel, bias) of the
    softmax layer, by hand in NumPy, on the images rescaled to [0, 1] as the step
    rescales them: each image's logits move by its weight times (p - target)."""
    x, p = probabilities_of(images)
    targets = labels * (1 - smoothing) + smoothing / labels.shape[1]
    weight = labels @ np.asarray(weights) if weights is not None else np.ones(len(images))
    dlogits = weight[:, None] * (p - targets) / len(images)
    return x.T @ dlogits, dlogits.sum(axis=0)


def batch_of(images, labels):
    return images, labels, np.zeros((len(images), 2), np.int64)


def test_one_step_on_one_device_follows_the_mean_gradient():
    model, steps = steps_on(tf.distribute.OneDeviceStrategy("/cpu:0"))
    sums = steps.train(batch_of(IMAGES, LABELS))
    kernel_gradient, bias_gradient = mean_loss_gradient(IMAGES, LABELS)
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel, KERNEL - kernel_gradient, atol=1e-6)
    np.testing.assert_allclose(bias, -bias_gradient, atol=1e-6)
    assert int(sums.images) == 5 and 0 <= int(sums.correct) <= 5 and float(sums.loss_sum) > 0
    assert float(sums.stops) == 0 and float(sums.unreadable) == 0


def test_two_replicas_take_the_same_step_as_one_device():
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(cpus) < 2:
        pytest.fail("conftest.py should have split the CPU into two logical devices")
    strategy = distribution.make_strategy("mirrored")  # over the two logical CPUs
    model, steps = steps_on(strategy)
    # Five images over two replicas: three on one, two on the other; each replica divides
    # its loss sum by the step's five images, so the summed gradients are the mean's.
    dataset = tf.data.Dataset.from_tensor_slices(batch_of(IMAGES, LABELS)).batch(5)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    assert len(strategy.experimental_local_results(batch[0])) == 2
    sums = steps.train(batch, tf.constant(1.0))
    kernel_gradient, bias_gradient = mean_loss_gradient(IMAGES, LABELS)
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel, KERNEL - kernel_gradient, atol=1e-6)
    np.testing.assert_allclose(bias, -bias_gradient, atol=1e-6)
    assert int(sums.images) == 5
    assert float(sums.stops) == 2  # the request reaches the all-reduce from both replicas


def test_class_weights_and_label_smoothing_weigh_each_image_as_numpy_does():
    """Two images of class 0, one of class 2 and two of class 1, weighed 0.5, 3 and 1,
    each label smoothed by 0.1: the step's loss sum and its gradient are NumPy's."""
    weights, smoothing = [0.5, 1.0, 3.0], 0.1
    model, steps = steps_on(
        tf.distribute.OneDeviceStrategy("/cpu:0"), loop.TrainingLoss(smoothing, weights)
    )
    images, labels = (
        np.concatenate([IMAGES, IMAGES[:1] * 0]),
        np.concatenate([LABELS, LABELS[:1] * 0]),
    )
    sums = steps.train(batch_of(images, labels))  # the last row a blank: it weighs nothing
    _, p = probabilities_of(IMAGES)
    targets = LABELS * (1 - smoothing) + smoothing / CLASSES
    losses = -(targets * np.log(np.clip(p, 1e-7, 1 - 1e-7))).sum(axis=1)
    np.testing.assert_allclose(float(sums.loss_sum), (LABELS @ weights * losses).sum(), rtol=1e-5)
    kernel_gradient, bias_gradient = mean_loss_gradient(IMAGES, LABELS, weights, smoothing)
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel, KERNEL - kernel_gradient, atol=1e-6)
    np.testing.assert_allclose(bias, -bias_gradient, atol=1e-6)
    assert int(sums.images) == 5


def test_a_padding_batch_of_no_image_changes_nothing():
    model, steps = steps_on(tf.distribute.OneDeviceStrategy("/cpu:0"))
    empty = batch_of(IMAGES[:0], LABELS[:0])
    sums = steps.train(empty)
    assert (float(sums.loss_sum), float(sums.correct), float(sums.images)) == (0.0, 0.0, 0.0)
    kernel, bias = model.get_weights()
    np.testing.assert_array_equal(kernel, KERNEL)
    np.testing.assert_array_equal(bias, np.zeros(CLASSES, np.float32))


def test_an_unreadable_image_in_a_batch_is_counted_and_not_learnt_from():
    """A file that failed to decode keeps its place as a blank with no label: the step
    takes the gradient of the other images' mean, as if the batch had held them only."""
    model, steps = steps_on(tf.distribute.OneDeviceStrategy("/cpu:0"))
    images, labels = IMAGES.copy(), LABELS.copy()
    images[2], labels[2] = 0, 0  # the blank the pipeline gives an unreadable file
    sums = steps.train(batch_of(images, labels))
    kept = [0, 1, 3, 4]
    kernel_gradient, bias_gradient = mean_loss_gradient(IMAGES[kept], LABELS[kept])
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel, KERNEL - kernel_gradient, atol=1e-6)
    np.testing.assert_allclose(bias, -bias_gradient, atol=1e-6)
    assert (int(sums.images), int(sums.unreadable)) == (4, 1)
    assert int(sums.correct) <= 4


def numbered_split(folder, count):
    """`count` 8x8 PNGs, pixels equal to their number, labels number % 3, read and kept."""
    from rps_tfdata.pipeline import options as options_lib
    from rps_tfdata.trainer import inputs

    from .helpers import write_png

    paths = [
        write_png(str(folder / f"{i:02d}.png"), np.full((8, 8, 3), i, np.uint8))
        for i in range(count)
    ]
    options = options_lib.PipelineOptions(image_size=(8, 8), batch_size=6)
    return inputs.read(paths, [i % 3 for i in range(count)], CLASSES, options)


def image_steps_for(size, jit_compile=False):
    """The steps of a tiny softmax model on `size` x `size` images, with Adam."""
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        inputs = keras.Input((size, size, 3))
        outputs = keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.Flatten()(inputs))
        model = keras.Model(inputs, outputs)
        optimizer = keras.optimizers.Adam()
        optimizer.build(model.trainable_variables)
    strategy = tf.distribute.get_strategy()
    return loop.make_steps(model, optimizer, strategy=strategy, jit_compile=jit_compile)


@pytest.mark.parametrize("per_call", [1, 3])
def test_a_run_with_a_partial_last_batch_traces_each_step_once(tmp_path, per_call):
    """20 images in batches of 6: the last batch holds 2, padded to 6 with blanks, so
    training (XLA-compiled here) and prediction see one shape and trace once each."""
    from rps_tfdata.trainer import evaluation, inputs

    prepared = numbered_split(tmp_path, 20)
    steps = image_steps_for(8, jit_compile=True)
    batches = iter(inputs.training_batches(prepared, seed=1, end_epoch=2))
    for _ in range(2):
        result = loop.run_epoch(steps, batches, 4, loop.EpochControls(steps_per_loop=per_call))
        assert result.images == 20 and result.unreadable == 0  # blanks are not images
    traced = steps.train if per_call == 1 else steps.train_loop
    assert traced.experimental_get_tracing_count() == 1
    probabilities, labels = evaluation.predict_all(
        steps.predict, inputs.evaluation_batches(prepared)
    )
    assert len(probabilities) == len(labels) == 20
    assert steps.predict.experimental_get_tracing_count() == 1


def test_a_stop_request_ends_a_call_at_the_step_that_carried_it(tmp_path):
    """The request is read before each call and rides in its first step's all-reduce:
    the call stops after that step, and that step is saved."""
    from rps_tfdata.trainer import inputs

    prepared = numbered_split(tmp_path, 60)  # 10 steps of 6
    steps = image_steps_for(8)
    batches = iter(inputs.training_batches(prepared, seed=1))
    asked = iter([False, True])
    saved = []
    controls = loop.EpochControls(
        steps_per_loop=4, save=saved.append, stop_signal=lambda: "SIGTERM" if next(asked) else ""
    )
    result = loop.run_epoch(steps, batches, 10, controls)
    assert result is None and [p.step for p in saved] == [5] and saved[0].images == 30


# ---- the loop on real batches: a tiny model, the real pipeline and augmentation ----------


@pytest.fixture(scope="module")
def hands(synthetic_dir):
    """The synthetic hands' 24 training images at 16 px, kept in memory."""
    from rps_tfdata.pipeline import options as options_lib
    from rps_tfdata.pipeline.reading import listing
    from rps_tfdata.trainer import inputs

    split = listing.list_split(synthetic_dir, 0.2, "training")
    options = options_lib.PipelineOptions(image_size=(16, 16), batch_size=8)
    return inputs.read(split.paths, split.labels, CLASSES, options)


@pytest.fixture(scope="module")
def layer():
    """One augmentation layer for every run here: its XLA compilation is paid once."""
    from rps_tfdata.pipeline.transforms.augment import IDGAugmentation
    from rps_tfdata.trainer.config import SEED_AUGMENTATION

    return IDGAugmentation(**SEED_AUGMENTATION, seed=3)


def trained_on(hands, layer, strategy, *, per_call=1, on_device=False, jit_compile=False, epochs=2):
    """A tiny softmax model (weights from seed 3) trained on `hands`, augmented in the
    pipeline or in the step, in calls of `per_call` steps with a save every 2 steps:
    (its weights, each epoch's (loss, accuracy, images), the steps saved)."""
    from rps_tfdata.trainer import inputs

    keras.utils.set_random_seed(3)
    with strategy.scope():
        images = keras.Input((16, 16, 3))
        outputs = keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.Flatten()(images))
        model = keras.Model(images, outputs)
        optimizer = keras.optimizers.Adam()
        optimizer.build(model.trainable_variables)
    steps = loop.make_steps(
        model,
        optimizer,
        strategy=strategy,
        augmentation=layer if on_device else None,
        jit_compile=jit_compile,
    )
    replicas = strategy.num_replicas_in_sync

    def dataset(context):
        return inputs.training_batches(
            hands,
            seed=3,
            end_epoch=epochs,
            augmentation=None if on_device else layer,
            batch_size=8 // replicas,
            batches_per_epoch=3 * replicas,
        )

    batches = iter(strategy.distribute_datasets_from_function(dataset))
    saved, results = [], []
    controls = loop.EpochControls(steps_per_loop=per_call, save_every=2, save=saved.append)
    for _ in range(epochs):
        result = loop.run_epoch(steps, batches, 3, controls)
        results.append((result.loss, result.accuracy, result.images))
    return model.get_weights(), results, [progress.step for progress in saved]


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


@pytest.mark.parametrize("strategy", ["one_device", "mirrored"])
def test_several_steps_per_call_train_the_same_weights_bit_for_bit(hands, layer, strategy):
    """3 steps an epoch, in calls of 2 cut at the save every 2 steps: the weights, the
    epochs' figures and the saves are those of one step a call, to the last bit."""
    make = (
        one_device if strategy == "one_device" else lambda: distribution.make_strategy("mirrored")
    )
    one = trained_on(hands, layer, make(), per_call=1)
    two = trained_on(hands, layer, make(), per_call=2)
    for a, b in zip(one[0], two[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert one[1] == two[1] and one[2] == two[2] == [2, 2]
    assert [images for _, _, images in one[1]] == [24, 24]


def test_host_and_device_augmentation_train_the_same_weights(hands, layer):
    """Uint8 crosses to the step, which rescales after augmenting, as the host does: the
    placements run the same arithmetic (they differed in rounding when the pipeline
    rescaled before the device augmented)."""
    host = trained_on(hands, layer, one_device(), on_device=False, epochs=1)
    device = trained_on(hands, layer, one_device(), on_device=True, epochs=1)
    for a, b in zip(host[0], device[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert host[1] == device[1]


def test_device_augmentation_compiles_inside_an_xla_step(hands, layer):
    """The augmentation's gather warp inside an XLA-compiled step: it trains, to within
    float rounding of the uncompiled step."""
    compiled = trained_on(hands, layer, one_device(), on_device=True, jit_compile=True, epochs=1)
    plain = trained_on(hands, layer, one_device(), on_device=True, epochs=1)
    for a, b in zip(compiled[0], plain[0], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.isfinite(compiled[1][0][0]) and compiled[1][0][2] == 24


def test_profile_steps_map_global_steps_to_an_epochs_window():
    window = loop.profile_window  # steps 5..9 of epochs of 4 steps: the second epoch's 1..4
    assert window((5, 9), 0, 4, "f") is None
    assert window((5, 9), 1, 4, "f") == loop.ProfileWindow(1, 4, "f")
    assert window((5, 9), 2, 4, "f") is None  # a trace ends with the epoch it started in
    assert window((2, 3), 0, 4, "f") == loop.ProfileWindow(2, 3, "f")


def test_a_profile_window_writes_one_trace(hands, tmp_path):
    from rps_tfdata.trainer import inputs

    steps = image_steps_for(16)
    batches = iter(inputs.training_batches(hands, seed=1))
    controls = loop.EpochControls(profile=loop.ProfileWindow(2, 3, str(tmp_path)))
    assert loop.run_epoch(steps, batches, 3, controls).images == 24
    traces = list((tmp_path / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000
