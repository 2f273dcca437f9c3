"""`--mode=fit`: what a notebook user gets from `model.fit` over one folder with the
seed's augmentation, through three input routes, epoch by epoch, interleaved in one run:

  idg     Keras' legacy `ImageDataGenerator.flow_from_directory` (the seed's code);
  keras   the route Keras' deprecation points to: `image_dataset_from_directory`,
          `.cache()`, the stock layers (rotation, translation, shear, zoom, flip,
          rescaling) in a `map`, prefetch;
  dropin  `rps_tfdata.image.ImageDataGenerator`, the seed's code with one import changed.

Each route trains its own copy of one small model (so that the input side decides).
A route's first epoch is measured in a fresh process (`--repeats` processes per route,
the routes taking turns), after one untimed `fit` on blanks that absorbs what any
process pays once; its later epochs in one process, one epoch at a time, the routes
taking turns. A route's first epoch includes making its
flow or dataset (IDG lists the folder; the drop-in also reads every file once) and its
first read; the later epochs read from each route's cache, if it has one.
"""

import os
import subprocess
import sys
import time

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata import image
from rps_tfdata.bench import throughput
from rps_tfdata.trainer.config import SEED_AUGMENTATION, TrainConfig

ROUTES = ("idg", "keras", "dropin")
RATIOS = {
    "fit_first_dropin_vs_idg": ("fit_dropin_first", "fit_idg_first"),
    "fit_later_dropin_vs_idg": ("fit_dropin_later", "fit_idg_later"),
    "fit_later_dropin_vs_keras": ("fit_dropin_later", "fit_keras_later"),
}


def small_model(size: int) -> keras.Model:
    """A model that costs little per image, so that the input side decides an epoch."""
    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(8, 3, strides=4, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "categorical_crossentropy")
    return model


def _flow(generator, config: TrainConfig):
    return generator.flow_from_directory(
        config.data_dir,
        target_size=(config.image_size, config.image_size),
        batch_size=config.batch_size,
        subset="training",
        seed=config.seed,
    )


def keras_route(config: TrainConfig) -> tuple[tf.data.Dataset, int]:
    """`image_dataset_from_directory` + cache + the stock layers nearest the seed's
    augmentation, as Keras' documentation builds it; and its images per epoch."""
    size = config.image_size
    dataset = keras.utils.image_dataset_from_directory(
        config.data_dir,
        validation_split=0.2,
        subset="training",
        seed=config.seed,
        image_size=(size, size),
        batch_size=config.batch_size,
        label_mode="categorical",
    )
    layers = [
        keras.layers.RandomRotation(40 / 360, fill_mode="nearest"),
        keras.layers.RandomTranslation(0.2, 0.2, fill_mode="nearest"),
        keras.layers.RandomShear(0.2, 0.2, fill_mode="nearest"),
        keras.layers.RandomZoom(0.2, fill_mode="nearest"),
        keras.layers.RandomFlip("horizontal"),
        keras.layers.Rescaling(1 / 255),
    ]

    def augment(x, y):
        # Each layer on its own: each runs TensorFlow inside tf.data whatever Keras'
        # backend (a `keras.Sequential` of them would convert the batch to jax's arrays).
        for layer in layers:
            x = layer(x, training=True)
        return x, y

    augmented = dataset.cache().map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return augmented.prefetch(tf.data.AUTOTUNE), len(dataset.file_paths)


def _warm_up(size: int) -> None:
    """One untimed `fit` on a few blank images, so that what a process pays once (the
    runtime, Keras' training machinery) lands on no route's first epoch."""
    blanks = tf.data.Dataset.from_tensors((tf.zeros((4, size, size, 3)), tf.zeros((4, 3))))
    small_model(size).fit(blanks, epochs=1, verbose=0)


def _make(route: str, config: TrainConfig) -> tuple[object, int]:
    """A route's input for `fit`, and its images per epoch."""
    if route == "keras":
        return keras_route(config)
    if route == "idg":
        from keras.src.legacy.preprocessing.image import ImageDataGenerator
    else:
        ImageDataGenerator = image.ImageDataGenerator  # noqa: N806 - the one import changed
    generator = ImageDataGenerator(rescale=1 / 255, validation_split=0.2, **SEED_AUGMENTATION)
    flow = _flow(generator, config)
    return flow, flow.samples


def measure(config: TrainConfig, epochs: int, repeats: int) -> dict[str, throughput.Rate]:
    """Images/s of each route's first epoch (cold, `_first_epoch`) and of its later ones
    (median and range)."""
    rates: dict[str, throughput.Rate] = {}
    for route, per_second in _first_epochs(config, repeats).items():
        rates[f"fit_{route}_first"] = throughput.rate_of(per_second)
    for route, per_second in _later_epochs(config, epochs).items():
        rates[f"fit_{route}_later"] = throughput.rate_of(per_second)
    return rates


def _first_epochs(config: TrainConfig, repeats: int) -> dict[str, list[float]]:
    """Each route's first epoch, each time in a process of its own (a first epoch is
    what a new process pays: its reads, traces and compilations), the routes taking
    turns `repeats` times."""
    per_second: dict[str, list[float]] = {route: [] for route in ROUTES}
    for repeat in range(repeats):
        for k in range(len(ROUTES)):
            route = ROUTES[(repeat + k) % len(ROUTES)]
            settings = [config.data_dir, str(config.image_size), str(config.batch_size)]
            done = subprocess.run(
                [sys.executable, "-m", "rps_tfdata.bench.fit_routes", route, *settings],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            rate = float(done.stdout.split()[-1])
            logging.info("fit %s first epoch, process %d: %.1f images/s", route, repeat + 1, rate)
            per_second[route].append(rate)
    return per_second


def _first_epoch(route: str, config: TrainConfig) -> float:
    """Images/s of one route's first epoch in this process, after `_warm_up`: making
    its input (IDG lists the folder; the drop-in reads every file once) and one epoch."""
    _warm_up(config.image_size)
    model = small_model(config.image_size)
    start = time.perf_counter()
    inputs, samples = _make(route, config)
    model.fit(inputs, epochs=1, verbose=0)
    return samples / (time.perf_counter() - start)


def _later_epochs(config: TrainConfig, epochs: int) -> dict[str, list[float]]:
    """Images/s of each route's epochs after its first, in this process, the routes
    taking turns epoch by epoch (the first epoch of each is run, not counted)."""
    _warm_up(config.image_size)
    models = {route: small_model(config.image_size) for route in ROUTES}
    inputs: dict = {}
    per_second: dict[str, list[float]] = {route: [] for route in ROUTES}
    for epoch in range(epochs):
        for k in range(len(ROUTES)):
            route = ROUTES[(epoch + k) % len(ROUTES)]  # each route takes each turn
            if route not in inputs:
                inputs[route] = _make(route, config)
            start = time.perf_counter()
            models[route].fit(inputs[route][0], epochs=1, verbose=0)
            rate = inputs[route][1] / (time.perf_counter() - start)
            logging.info("fit %s epoch %d: %.1f images/s", route, epoch + 1, rate)
            if epoch:
                per_second[route].append(rate)
    return per_second


if __name__ == "__main__":  # one cold first epoch: ROUTE DATA_DIR IMAGE_SIZE BATCH_SIZE
    route_name, data_dir, image_size, batch_size = sys.argv[1:5]
    measured = TrainConfig(
        data_dir=data_dir, image_size=int(image_size), batch_size=int(batch_size)
    )
    print(f"{_first_epoch(route_name, measured):.3f}")
