"""A training run's settings: what they are, what they mean together, what is refused.

`TrainConfig` is everything a run needs as plain values (the flags of `rps_tfdata.train`
map onto it one to one); `check_config` refuses combinations that cannot work, naming
the flags, before any data is read.
"""

import os
from typing import Any, NamedTuple, Optional

import tensorflow as tf

from rps_tfdata.core import distribution, index, pipeline
from rps_tfdata.core import model as model_lib
from rps_tfdata.core.augment import IDGAugmentation
from rps_tfdata.core.errors import ConfigError

AUGMENT_MODES = ("idg", "none")
AUGMENT_PLACES = ("auto", "host", "device")


class TrainConfig(NamedTuple):
    """Everything a run needs; `rps_tfdata.train`'s flags document each field."""

    train_dir: str
    model_dir: str
    test_dir: Optional[str] = None
    epochs: int = 25
    validation_split: float = 0.2
    learning_rate: float = 1e-3
    seed: int = 42
    augment: str = "idg"
    augment_validation: bool = False
    augment_on: str = "auto"
    jit_augment: bool = True
    precision: str = "float32"
    jit_compile: str = "auto"
    on_bad_image: str = "skip"
    strategy: str = "auto"
    data_service: str = ""  # grpc://HOST:PORT of a tf.data service dispatcher
    data_service_timeout: float = 60.0  # seconds without a dispatcher before stopping
    cpu_devices: int = 1  # logical devices the CPU is split into (mirrored without GPUs)
    dataset: str = "folder"  # "folder": train_dir (and test_dir); "tfds": TFDS's prepared set
    tfds_data_dir: str = ""  # where TFDS keeps prepared datasets ("": its default)
    input: pipeline.PipelineOptions = pipeline.PipelineOptions()


def settings_of(config: TrainConfig) -> dict[str, Any]:
    """The run's settings by flag name, as `run_config.json` records them."""
    options = config.input
    return {
        "data_dir": os.path.abspath(config.train_dir) if config.train_dir else None,
        "dataset": config.dataset,
        "test_dir": os.path.abspath(config.test_dir) if config.test_dir else None,
        "epochs": config.epochs,
        "validation_split": config.validation_split,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "augment": config.augment,
        "augment_validation": config.augment_validation,
        "augment_on": config.augment_on,
        "jit_augment": config.jit_augment,
        "mixed_precision": config.precision,
        "jit_compile": config.jit_compile,
        "on_bad_image": config.on_bad_image,
        "strategy": config.strategy,
        "data_service": bool(config.data_service),  # the address may change between runs
        "data_service_timeout": config.data_service_timeout,
        "cpu_devices": config.cpu_devices,
        "image_size": options.image_size[0],
        "batch_size": options.batch_size,
        "resize_method": options.resize_method,
        "deterministic": options.deterministic,
        "image_cache": options.cache,
        "parallel_calls": options.parallel_calls,
        "threadpool_size": options.threadpool_size,
        "prefetch": options.prefetch,
    }


def _check_data_service(config: TrainConfig) -> None:
    """The service's workers read files and hand out images in the order they finish."""
    if distribution.resolve(config.strategy) != "one_device":
        raise ConfigError("--data_service feeds one trainer: use it with --strategy=one_device")
    if config.input.cache == "memory":
        raise ConfigError(
            "--data_service runs the pipeline on its workers, which read the image files: "
            "use --image_cache=none or --image_cache=disk (a folder the workers can read)"
        )
    if config.input.deterministic:
        raise ConfigError(
            "--data_service gives up the order of images (workers deliver as they finish; "
            "each image's augmentation stays the same): pass --nodeterministic to accept it"
        )


def resolve_augment_on(augment_on: str) -> str:
    """ "auto": on the device when a GPU is visible (the host would starve it), else on
    the host (a CPU "device" is the host anyway, and the tf.data threads overlap it)."""
    if augment_on == "auto":
        return "device" if tf.config.list_physical_devices("GPU") else "host"
    if augment_on not in AUGMENT_PLACES:
        raise ValueError(f"augment_on must be one of {AUGMENT_PLACES}. Received: {augment_on!r}")
    return augment_on


def augments_on_device(config: TrainConfig) -> bool:
    """Whether this run augments inside the train step rather than in tf.data."""
    return resolve_augment_on(config.augment_on) == "device"


def make_augmentation(config: TrainConfig) -> Optional[IDGAugmentation]:
    """The seed's IDG augmentation, or None with --augment=none."""
    if config.augment == "none":
        return None
    return IDGAugmentation(seed=config.seed, jit_compile=config.jit_augment)


def check_config(config: TrainConfig) -> None:
    """Raises ConfigError (naming the flags at fault) for settings that cannot work together."""
    if config.data_service:
        _check_data_service(config)
    if config.dataset == "tfds" and config.input.cache != "memory":
        raise ConfigError(
            "--dataset=tfds holds TFDS's decoded images in memory: drop --image_cache"
        )
    if config.dataset == "tfds" and config.data_service:
        raise ConfigError("--data_service reads image files: it cannot serve --dataset=tfds")
    try:
        index.check_validation_split(config.validation_split)
    except ValueError as e:
        raise ConfigError(f"--{e}") from e
    on_device = augments_on_device(config)
    if config.augment_validation and on_device:
        raise ConfigError(
            "--augment_validation needs --augment_on=host: augmentation on the device runs "
            "inside the train step only, never on validation"
        )
    if on_device and not config.jit_augment and model_lib.step_uses_xla(config.jit_compile):
        raise ConfigError(
            "--nojit_augment cannot run inside an XLA-compiled train step (its projective-"
            "transform op has no XLA kernel): drop --nojit_augment, or use --augment_on=host "
            "or --jit_compile=false"
        )
