"""`--mode=fit`: what a notebook user gets from `model.fit` over one folder with the
seed's augmentation, through three input routes, epoch by epoch, interleaved in one run:

  idg     Keras' legacy `ImageDataGenerator.flow_from_directory` (the seed's code);
  keras   the route Keras' deprecation points to: `image_dataset_from_directory`,
          `.cache()`, the stock layers (rotation, translation, shear, zoom, flip,
          rescaling) in a `map`, prefetch;
  dropin  `rps_tfdata.image.ImageDataGenerator`, the seed's code with one import changed.

Each route trains its own copy of one small model (so that the input side decides), one
epoch at a time, the routes taking turns. A route's first epoch includes making its
flow or dataset (IDG lists the folder; the drop-in also reads every file once) and its
first read; the later epochs read from each route's cache, if it has one.
"""

import time

import keras
import tensorflow as tf
from absl import logging

from rps_tfdata import image
from rps_tfdata.bench import throughput
from rps_tfdata.core.augment import SEED_AUGMENTATION
from rps_tfdata.core.config import TrainConfig

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


def _keras_route(config: TrainConfig) -> tuple[tf.data.Dataset, int]:
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
    layers = keras.Sequential(
        [
            keras.layers.RandomRotation(40 / 360, fill_mode="nearest"),
            keras.layers.RandomTranslation(0.2, 0.2, fill_mode="nearest"),
            keras.layers.RandomShear(0.2, 0.2, fill_mode="nearest"),
            keras.layers.RandomZoom(0.2, fill_mode="nearest"),
            keras.layers.RandomFlip("horizontal"),
            keras.layers.Rescaling(1 / 255),
        ]
    )
    augmented = dataset.cache().map(
        lambda x, y: (layers(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return augmented.prefetch(tf.data.AUTOTUNE), len(dataset.file_paths)


def _make(route: str, config: TrainConfig) -> tuple[object, int]:
    """A route's input for `fit`, and its images per epoch."""
    if route == "keras":
        return _keras_route(config)
    if route == "idg":
        from keras.src.legacy.preprocessing.image import ImageDataGenerator
    else:
        ImageDataGenerator = image.ImageDataGenerator  # noqa: N806 - the one import changed
    generator = ImageDataGenerator(rescale=1 / 255, validation_split=0.2, **SEED_AUGMENTATION)
    flow = _flow(generator, config)
    return flow, flow.samples


def measure(config: TrainConfig, epochs: int) -> dict[str, throughput.Rate]:
    """Images/s of each route's first epoch and of its later ones (median and range)."""
    models = {route: small_model(config.image_size) for route in ROUTES}
    inputs: dict = {}
    seconds: dict[str, list[float]] = {route: [] for route in ROUTES}
    samples: dict[str, int] = {}
    for epoch in range(epochs):
        for k in range(len(ROUTES)):
            route = ROUTES[(epoch + k) % len(ROUTES)]  # each route takes each turn
            start = time.perf_counter()
            if route not in inputs:
                inputs[route], samples[route] = _make(route, config)
            history = models[route].fit(inputs[route], epochs=1, verbose=0)
            seconds[route].append(time.perf_counter() - start)
            logging.info(
                "fit %s epoch %d: %.1f s (loss %.3f)",
                route,
                epoch + 1,
                seconds[route][-1],
                history.history["loss"][-1],
            )
    rates: dict[str, throughput.Rate] = {}
    for route in ROUTES:
        per_second = [samples[route] / s for s in seconds[route]]
        rates[f"fit_{route}_first"] = throughput.rate_of(per_second[:1])
        if len(per_second) > 1:
            rates[f"fit_{route}_later"] = throughput.rate_of(per_second[1:])
    return rates
