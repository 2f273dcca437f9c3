"""A training run's settings, each defined once: its name, default, choices or bounds, and
whether a rerun may change it; and every rule that does not depend on the machine.

`TrainConfig`'s field names are the flags of `python -m rps_tfdata.train` and its defaults
the flags' defaults; `CHOICES` and `LOWER_BOUNDS` are what the flags accept
(`rps_tfdata.cli.flag_defs` builds each flag from here, and its validator calls
`setting_problem`, so a value is refused at parse time with the words `check_config` uses).
`check_config` is the one place that checks what does not depend on the machine: each
field's value, then the combinations that cannot work anywhere. What depends on the
machine (`auto` values, devices) is resolved and checked once, in `rps_tfdata.trainer.plan`,
which calls `check_config` first. No TensorFlow here: the command line reads this module
before TensorFlow starts.
"""

import os
from typing import Any, NamedTuple, Optional

from rps_tfdata.infra.errors import ConfigError
from rps_tfdata.pipeline.options import AUTOTUNE
from rps_tfdata.trainer.architecture import min_image_size
from rps_tfdata.trainer.download import DEFAULT_DOWNLOAD_DIR

# The seed script's augmentation, IDG's keywords: what `--augment=idg` trains with.
SEED_AUGMENTATION = dict(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=0.2,
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
)


class TrainConfig(NamedTuple):
    """Everything a run needs, by flag name; `rps_tfdata.train --helpfull` documents each."""

    # Where the images and the run are.
    data_dir: str = ""  # "" with dataset="folder": the official rps.zip
    test_dir: str = ""
    model_dir: str = "runs/rps"
    dataset: str = "folder"
    download_dir: str = DEFAULT_DOWNLOAD_DIR
    base_url: str = ""
    tfds_data_dir: str = ""
    # What the run computes.
    epochs: int = 25
    batch_size: int = 32
    image_size: int = 150
    validation_split: float = 0.2
    learning_rate: float = 1e-3
    # The recipe beyond the seed's (each off by default: the seed's run, bit for bit).
    lr_schedule: str = "constant"  # the rate over the global step: constant, or cosine to 0
    warmup_epochs: int = 0  # epochs of linear warmup from 0 to --learning_rate
    label_smoothing: float = 0.0
    class_weight: str = "none"  # balanced: each class weighs n / (classes * its count)
    early_stopping_patience: int = 0  # epochs without a better val_loss before the end
    early_stopping_min_delta: float = 0.0  # what counts as better: lower by more than this
    seed: int = 42
    augment: str = "idg"
    augment_validation: bool = False
    augment_on: str = "auto"
    jit_augment: bool = True
    mixed_precision: str = "float32"
    jit_compile: str = "auto"
    resize_method: str = "pil_nearest"
    deterministic: Optional[bool] = None  # None: yes, unless the tf.data service feeds the run
    on_bad_image: str = "skip"
    checkpoint_every: int = 0  # steps between checkpoints inside an epoch (0: at its end only)
    steps_per_loop: int = 1  # train steps per call of the compiled loop (one host read each)
    profile_steps: str = ""  # "A,B": a profiler trace of global steps A..B into logs/
    # How fast, and on what.
    image_cache: str = "auto"  # auto: memory if it fits (else disk); none with the tf.data service
    parallel_calls: int = AUTOTUNE
    threadpool_size: int = 0
    prefetch: int = AUTOTUNE
    strategy: str = "auto"
    cpu_devices: int = 1
    peer_timeout: float = 600.0  # seconds a collective waits for the other workers
    data_service: str = ""
    data_service_timeout: float = 60.0
    data_service_compression: str = "auto"


# The values a setting of a fixed set takes (the first of "auto" settings is resolved by
# the plan).
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": ("folder", "tfds"),
    "lr_schedule": ("constant", "cosine"),
    "class_weight": ("none", "balanced"),
    "augment": ("idg", "none"),
    "augment_on": ("auto", "host", "device"),
    "mixed_precision": ("float32", "mixed_float16", "mixed_bfloat16"),
    "jit_compile": ("auto", "true", "false"),
    "resize_method": ("pil_nearest", "bilinear", "area"),
    "image_cache": ("auto", "memory", "disk", "none"),
    "on_bad_image": ("skip", "fail"),
    "strategy": ("auto", "one_device", "mirrored", "multi_worker"),
    "data_service_compression": ("auto", "snappy", "none"),
}
# The smallest value of a numeric setting.
LOWER_BOUNDS: dict[str, float] = {
    "epochs": 1,
    "batch_size": 1,
    "warmup_epochs": 0,
    "early_stopping_patience": 0,
    "early_stopping_min_delta": 0.0,
    "parallel_calls": AUTOTUNE,
    "threadpool_size": 0,
    "prefetch": AUTOTUNE,
    "checkpoint_every": 0,
    "steps_per_loop": 1,
    "cpu_devices": 1,
    "peer_timeout": 1.0,
    "data_service_timeout": 1.0,
}

# Fields that say where the images and the run are, and what the run runs on; the other
# fields (what it computes, how fast) are the flags that `benchmark` shares with `train`.
LOCATION = (
    "data_dir",
    "test_dir",
    "model_dir",
    "dataset",
    "download_dir",
    "base_url",
    "tfds_data_dir",
)
PLACEMENT = (
    "strategy",
    "cpu_devices",
    "peer_timeout",
    "data_service",
    "data_service_timeout",
    "data_service_compression",
)
# The run's folder: where it is, not what it is.
WHERE = ("model_dir",)
# Recorded, but a rerun may change them: they change speed or sources, never results.
MAY_CHANGE = (
    "epochs",  # a larger count continues a run; a smaller one is refused on its own terms
    "download_dir",
    "base_url",
    "tfds_data_dir",
    "image_cache",
    "parallel_calls",
    "threadpool_size",
    "prefetch",
    "data_service_timeout",
    "data_service_compression",
    "checkpoint_every",  # where a rerun starts from, never what it computes
    "steps_per_loop",  # the same steps, bit for bit, in fewer calls
    "profile_steps",
    "peer_timeout",
)


def settings_of(config: TrainConfig) -> dict[str, Any]:
    """The run's settings by flag name, as `run_config.json` records them."""
    settings = {name: value for name, value in config._asdict().items() if name not in WHERE}
    for name in ("data_dir", "test_dir"):
        value = settings[name]
        settings[name] = (value if "://" in value else os.path.abspath(value)) if value else None
    settings["data_service"] = bool(config.data_service)  # the address may change between runs
    return settings


def _special_problem(name: str, value: Any) -> Optional[str]:
    """The rules of the settings whose range is not a list or a lower bound."""
    if name == "validation_split" and not 0 < value < 1:
        return (
            "the fraction of each class held out for validation must be in (0, 1): training "
            "keeps the weights with the best validation loss"
        )
    if name == "learning_rate" and not value > 0:
        return "Adam's learning rate must be > 0"
    if name == "label_smoothing" and not 0 <= value < 1:
        return "the share of each label spread over the classes must be in [0, 1)"
    if name == "image_size" and value < min_image_size():
        return (
            f"images must be at least {min_image_size()} pixels on a side for the CNN's four "
            "conv/pool stages"
        )
    if name == "profile_steps" and value and profile_range(value) is None:
        return "not two step numbers A,B with 1 <= A <= B (for example --profile_steps=10,15)"
    return None


def setting_problem(name: str, value: Any) -> Optional[str]:
    """What is wrong with `value` for the setting `name` on its own, or None."""
    if name in CHOICES and value not in CHOICES[name]:
        return f"value should be one of <{'|'.join(CHOICES[name])}>"  # absl enum flags' words
    if name in LOWER_BOUNDS and value < LOWER_BOUNDS[name]:
        return f"must be at least {LOWER_BOUNDS[name]:g}"
    return _special_problem(name, value)


def check_config(config: TrainConfig) -> None:
    """Raises ConfigError, naming the flags at fault, for a value out of its range or
    settings that cannot work together whatever the machine."""
    for name, value in config._asdict().items():
        problem = setting_problem(name, value)
        if problem:
            raise ConfigError(f"--{name}={value}: {problem}")
    for problem in _combination_problems(config):
        raise ConfigError(problem)


def _combination_problems(config: TrainConfig):
    """Yields what cannot work together in `config` (the first one is reported)."""
    service, tfds = bool(config.data_service), config.dataset == "tfds"
    if service and config.image_cache == "memory":
        yield (
            "--data_service runs the pipeline on its workers, which read the image files: "
            "use --image_cache=none or --image_cache=disk (a folder the workers can read)"
        )
    if service and config.deterministic:
        yield (
            "--data_service gives up the order of images (workers deliver as they finish; "
            "each image's augmentation stays the same): drop --deterministic"
        )
    if service and config.checkpoint_every:
        yield (
            "--checkpoint_every needs the local pipeline: with --data_service an epoch is one "
            "service job, and a cut one is trained again from its start; drop one of the two"
        )
    if service and config.steps_per_loop > 1:
        yield (
            "--steps_per_loop runs several steps of a known epoch in one call: with "
            "--data_service an epoch ends when the service's job does; drop one of the two"
        )
    if config.warmup_epochs >= config.epochs and config.lr_schedule == "cosine":
        yield (
            f"--warmup_epochs={config.warmup_epochs} leaves no epoch of the cosine decay in "
            f"--epochs={config.epochs}: warm up for fewer epochs"
        )
    if config.warmup_epochs > config.epochs:
        yield f"--warmup_epochs={config.warmup_epochs} is more than --epochs={config.epochs}"
    if tfds and config.image_cache not in ("auto", "memory"):
        yield "--dataset=tfds holds TFDS's decoded images in memory: drop --image_cache"
    if tfds and service:
        yield "--data_service reads image files: it cannot serve --dataset=tfds"
    if tfds and (config.data_dir or config.test_dir):
        yield "--dataset=tfds reads TFDS: drop --data_dir and --test_dir"


def profile_range(profile_steps: str) -> Optional[tuple[int, int]]:
    """`--profile_steps` "A,B" as (A, B), the first and last global step (from 1) traced;
    None for "" or a value that is not such a range (`setting_problem` says so)."""
    first, _, last = profile_steps.partition(",")
    if not (first.strip().isdigit() and last.strip().isdigit()) or not 0 < int(first) <= int(last):
        return None
    return int(first), int(last)
