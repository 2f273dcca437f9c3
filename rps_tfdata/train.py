"""Trains the seed's RPS CNN: `python -m rps_tfdata.train --epochs=25`.

A thin entry point: it defines and validates the flags, resolves where the images come
from, and calls `rps_tfdata.training.train_and_evaluate`. Named jobs live in
`flags/*.flags` (`--flagfile=flags/seed.flags`); the flags of every run are saved in its
model folder as `flags.txt`, itself a flagfile that repeats the run.
"""

import os
import sys
from typing import Optional, Sequence

from absl import flags, logging

from rps_tfdata import artifacts, cli, common_flags, model, pipeline, sources, training

TEST_DIR = flags.DEFINE_string(
    "test_dir",
    None,
    "Optional held-out folder (same classes) evaluated at the end. "
    "Without --data_dir, the official rps-test-set.zip is used.",
)
VALIDATION_SPLIT = flags.DEFINE_float(
    "validation_split",
    0.2,
    "Fraction of each class (its first files, as IDG) held out for validation, in (0, 1).",
    lower_bound=0.0,
    upper_bound=1.0,
)
LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.")
AUGMENT = flags.DEFINE_enum(
    "augment",
    "idg",
    training.AUGMENT_MODES,
    "idg: the seed's ImageDataGenerator augmentation, fused into one warp; none: no augmentation.",
)
AUGMENT_VALIDATION = flags.DEFINE_bool(
    "augment_validation",
    False,
    "Augment the validation images too, as the seed script "
    "does by accident (makes val_loss, and so the best checkpoint, noisy).",
)
AUGMENT_ON = flags.DEFINE_enum(
    "augment_on",
    "auto",
    training.AUGMENT_PLACES,
    "host: augment in the tf.data pipeline; device: inside the train step (XLA-compiled "
    "warp); auto: device when a GPU is visible, else host.",
)
MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision",
    "float32",
    model.PRECISIONS,
    "Compute dtype policy of the CNN (the softmax stays float32). mixed_float16 adds "
    "loss scaling; mixed_bfloat16 suits recent GPUs and TPUs.",
)
JIT_COMPILE = flags.DEFINE_enum(
    "jit_compile",
    "auto",
    model.JIT_MODES,
    "XLA for the model's train step: auto (Keras: on for GPUs, off for CPUs, where it "
    "measured slower), true, false.",
)
JIT_AUGMENT = flags.DEFINE_bool(
    "jit_augment",
    True,
    "Compile each batch's augmentation with XLA (gather warp); off: the stock "
    "projective-transform op, uncompiled.",
)
RESIZE_METHOD = flags.DEFINE_enum(
    "resize_method",
    "pil_nearest",
    pipeline.RESIZE_METHODS,
    "pil_nearest matches IDG (PIL NEAREST) exactly; bilinear and area are smoother.",
)
CACHE = flags.DEFINE_enum(
    "cache",
    "memory",
    pipeline.CACHE_MODES,
    "Where decoded, resized uint8 images are kept "
    "after the first epoch: memory (about 170 MB at 150x150), disk (under "
    "MODEL_DIR/tf_data_cache), or none (decode every epoch).",
)
PARALLEL_CALLS = flags.DEFINE_integer(
    "parallel_calls",
    -1,
    "Parallelism of the decode and augment maps; -1: tf.data AUTOTUNE.",
    lower_bound=-1,
)
THREADPOOL_SIZE = flags.DEFINE_integer(
    "threadpool_size",
    0,
    "Threads of a private tf.data pool; 0: TensorFlow's shared pool.",
    lower_bound=0,
)
PREFETCH = flags.DEFINE_integer(
    "prefetch", -1, "Batches prefetched ahead of the model; -1: tf.data AUTOTUNE.", lower_bound=-1
)
DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", True, "Keep tf.data's element order deterministic (repeatable runs)."
)
CACHE_DIR = flags.DEFINE_string(
    "cache_dir",
    sources.DEFAULT_CACHE_DIR,
    "Where downloaded zips and their extracted folders are kept and reused.",
)
BASE_URL = flags.DEFINE_string(
    "base_url",
    None,
    f"Mirror of the dataset zips (default ${sources.BASE_URL_ENV}, else the official bucket).",
)


@flags.validator(
    "validation_split",
    "--validation_split must be in (0, 1): the best "
    "weights are chosen by validation loss, so a validation subset is needed.",
)
def _validation_split_is_open(value: float) -> bool:
    return 0 < value < 1


@flags.validator("learning_rate", "--learning_rate must be > 0.")
def _learning_rate_is_positive(value: float) -> bool:
    return value > 0


@flags.multi_flags_validator(
    ["augment_validation", "augment_on"],
    "--augment_validation needs --augment_on=host: on the device, augmentation runs inside "
    "the train step only, never on validation.",
)
def _validation_augmented_on_host(values: dict) -> bool:
    return not (values["augment_validation"] and values["augment_on"] == "device")


def make_config() -> training.TrainConfig:
    """The run's configuration from the flags, fetching the official set if needed."""
    train_dir, test_dir = common_flags.DATA_DIR.value, TEST_DIR.value
    if not train_dir:
        rps = sources.fetch_rps(CACHE_DIR.value, BASE_URL.value)
        train_dir, test_dir = rps.train_dir, test_dir or rps.test_dir
    return config_from_flags(train_dir, test_dir)


def config_from_flags(train_dir: str, test_dir: Optional[str] = None) -> training.TrainConfig:
    """The training flags as a TrainConfig for these data folders (benchmarks reuse it)."""
    return training.TrainConfig(
        train_dir=train_dir,
        test_dir=test_dir,
        model_dir=common_flags.MODEL_DIR.value,
        epochs=common_flags.EPOCHS.value,
        validation_split=VALIDATION_SPLIT.value,
        learning_rate=LEARNING_RATE.value,
        seed=common_flags.SEED.value,
        augment=AUGMENT.value,
        augment_validation=AUGMENT_VALIDATION.value,
        augment_on=AUGMENT_ON.value,
        jit_augment=JIT_AUGMENT.value,
        precision=MIXED_PRECISION.value,
        jit_compile=JIT_COMPILE.value,
        input=pipeline.PipelineOptions(
            image_size=(common_flags.IMAGE_SIZE.value, common_flags.IMAGE_SIZE.value),
            batch_size=common_flags.BATCH_SIZE.value,
            resize_method=RESIZE_METHOD.value,
            cache=CACHE.value,
            cache_path=os.path.join(common_flags.MODEL_DIR.value, "tf_data_cache"),
            deterministic=DETERMINISTIC.value,
            parallel_calls=PARALLEL_CALLS.value,
            threadpool_size=THREADPOOL_SIZE.value,
            prefetch=PREFETCH.value,
        ),
    )


def main(argv: Sequence[str]) -> None:
    cli.reject_positional(argv)
    config = make_config()
    os.makedirs(config.model_dir, exist_ok=True)
    with open(os.path.join(config.model_dir, artifacts.FLAGS), "w") as f:
        f.write(cli.serialize_flags(sys.modules[__name__], common_flags))
    metrics = training.train_and_evaluate(config)
    summary = ", ".join(
        f"{key}={metrics[key]:.4f}"
        for key in ("val_accuracy", "val_loss", "test_accuracy", "test_loss")
        if key in metrics
    )
    logging.info("done: %s; artifacts in %s", summary, config.model_dir)
    print(summary)


def run() -> None:
    """Console-script entry point (`rps-train`)."""
    cli.run(main)


if __name__ == "__main__":
    run()
