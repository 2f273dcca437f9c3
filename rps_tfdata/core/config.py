"""A training run's settings: one field per flag of `python -m rps_tfdata.train`, what a
run records of them, and the combinations refused before anything is read.

`TrainConfig`'s field names are the flags' names and its defaults the flags' defaults
(`rps_tfdata.cli.flag_defs` reads them from here), so a setting is named once. A run
records every field but its own folder in `run_config.json` (`settings_of`); a rerun in
that folder must keep them, except the ones in `MAY_CHANGE`, which change how fast a run
goes or where it fetches from, never what it computes. Values that depend on the machine
or on other settings (`auto`) are resolved once, in `rps_tfdata.core.plan`.
"""

import os
from typing import Any, NamedTuple, Optional

from rps_tfdata.core import index
from rps_tfdata.core.download import DEFAULT_DOWNLOAD_DIR
from rps_tfdata.core.errors import ConfigError

AUGMENT_MODES = ("idg", "none")
AUGMENT_PLACES = ("auto", "host", "device")
DATASETS = ("folder", "tfds")
IMAGE_CACHES = ("auto", "memory", "disk", "none")
SERVICE_COMPRESSIONS = ("auto", "snappy", "none")


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
    image_cache: str = "auto"  # auto: memory, or none when the tf.data service feeds the run
    parallel_calls: int = -1  # tf.data AUTOTUNE
    threadpool_size: int = 0
    prefetch: int = -1  # tf.data AUTOTUNE
    strategy: str = "auto"
    cpu_devices: int = 1
    peer_timeout: float = 600.0  # seconds a collective waits for the other workers
    data_service: str = ""
    data_service_timeout: float = 60.0
    data_service_compression: str = "auto"


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


def check_config(config: TrainConfig) -> None:
    """Raises ConfigError (naming the flags at fault) for settings that cannot work
    together whatever the machine; `plan.make_plan` checks the rest once it has resolved
    the `auto` values."""
    if config.data_service:
        if config.image_cache == "memory":
            raise ConfigError(
                "--data_service runs the pipeline on its workers, which read the image files: "
                "use --image_cache=none or --image_cache=disk (a folder the workers can read)"
            )
        if config.deterministic:
            raise ConfigError(
                "--data_service gives up the order of images (workers deliver as they finish; "
                "each image's augmentation stays the same): drop --deterministic"
            )
    if config.data_service and config.checkpoint_every:
        raise ConfigError(
            "--checkpoint_every needs the local pipeline: with --data_service an epoch is one "
            "service job, and a cut one is trained again from its start; drop one of the two"
        )
    if config.data_service and config.steps_per_loop > 1:
        raise ConfigError(
            "--steps_per_loop runs several steps of a known epoch in one call: with "
            "--data_service an epoch ends when the service's job does; drop one of the two"
        )
    profile_range(config.profile_steps)
    if config.dataset == "tfds":
        if config.image_cache not in ("auto", "memory"):
            raise ConfigError(
                "--dataset=tfds holds TFDS's decoded images in memory: drop --image_cache"
            )
        if config.data_service:
            raise ConfigError("--data_service reads image files: it cannot serve --dataset=tfds")
        if config.data_dir or config.test_dir:
            raise ConfigError("--dataset=tfds reads TFDS: drop --data_dir and --test_dir")
    try:
        index.check_validation_split(config.validation_split)
    except ValueError as e:
        raise ConfigError(f"--{e}") from e


def profile_range(profile_steps: str) -> Optional[tuple[int, int]]:
    """`--profile_steps` "A,B" as (A, B), the first and last global step (from 1) traced;
    None for ""; raises ConfigError naming the flag otherwise."""
    if not profile_steps:
        return None
    first, _, last = profile_steps.partition(",")
    if not (first.strip().isdigit() and last.strip().isdigit()) or not 0 < int(first) <= int(last):
        raise ConfigError(
            f"--profile_steps={profile_steps!r} is not two step numbers A,B with 1 <= A <= B "
            "(for example --profile_steps=10,15)"
        )
    return int(first), int(last)
