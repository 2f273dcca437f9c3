"""A run's plan: every `auto` of its settings resolved once, against this machine.

`make_plan` creates the `tf.distribute` strategy (first: a multi-worker strategy must
exist before TensorFlow runs any op), then decides once where and how augmentation runs,
whether the train step is XLA-compiled, each replica's share of the batch and how images
are read; it refuses what cannot work on this machine and logs the result in one line.
The training loop, the pipeline, the benchmarks and the logs read the plan; nothing
resolves a setting twice, and the augmentation layer is built once.
"""

import os
from typing import NamedTuple, Optional

import tensorflow as tf
from absl import logging

from rps_tfdata.core import distribution, reading
from rps_tfdata.core import model as model_lib
from rps_tfdata.core.augment import IDGAugmentation
from rps_tfdata.core.config import AUGMENT_PLACES, TrainConfig
from rps_tfdata.core.errors import ConfigError

DISK_CACHE_FOLDER = "tf_data_cache"  # --image_cache=disk's folder, inside the run's


class Plan(NamedTuple):
    """What a run does on this machine, every choice made.

    Attributes:
      strategy: the `tf.distribute` strategy; `worker` this process's place in it.
      replica_batch: each replica's share of the global batch.
      local_replicas: replicas in this process.
      augmentation: the one augmentation layer (None with --augment=none).
      augment_on_device: it runs inside the train step (else in tf.data).
      xla: the train step is XLA-compiled.
      input: how images are read and fed (cache, determinism resolved).
    """

    strategy: tf.distribute.Strategy
    worker: distribution.Worker
    replica_batch: int
    local_replicas: int
    augmentation: Optional[IDGAugmentation]
    augment_on_device: bool
    xla: bool
    input: reading.PipelineOptions

    @property
    def host_augmentation(self) -> Optional[IDGAugmentation]:
        """The layer the tf.data pipeline applies, if it augments."""
        return None if self.augment_on_device else self.augmentation

    @property
    def device_augmentation(self) -> Optional[IDGAugmentation]:
        """The layer the train step applies, if it augments."""
        return self.augmentation if self.augment_on_device else None


def resolve_augment_on(augment_on: str) -> str:
    """ "auto": on the device when a GPU is visible (the host would starve it), else on
    the host (a CPU "device" is the host anyway, and the tf.data threads overlap it)."""
    if augment_on not in AUGMENT_PLACES:
        raise ValueError(f"augment_on must be one of {AUGMENT_PLACES}. Received: {augment_on!r}")
    if augment_on == "auto":
        return "device" if tf.config.list_physical_devices("GPU") else "host"
    return augment_on


def input_options(config: TrainConfig) -> reading.PipelineOptions:
    """How a run reads images: the image cache and determinism resolved (the tf.data
    service's workers read files and deliver as they finish; other runs cache in memory
    and keep the order), and the disk cache inside the run's folder."""
    service = bool(config.data_service)
    cache = config.image_cache if config.image_cache != "auto" else "none" if service else "memory"
    deterministic = config.deterministic if config.deterministic is not None else not service
    return reading.PipelineOptions(
        image_size=(config.image_size, config.image_size),
        batch_size=config.batch_size,
        resize_method=config.resize_method,
        cache=cache,
        cache_path=os.path.join(config.model_dir, DISK_CACHE_FOLDER),
        deterministic=deterministic,
        parallel_calls=config.parallel_calls,
        threadpool_size=config.threadpool_size,
        prefetch=config.prefetch,
    )


def make_augmentation(config: TrainConfig) -> Optional[IDGAugmentation]:
    """The seed's IDG augmentation, or None with --augment=none."""
    if config.augment == "none":
        return None
    return IDGAugmentation(seed=config.seed, jit_compile=config.jit_augment)


def _check(config: TrainConfig, strategy: tf.distribute.Strategy, on_device: bool, xla: bool):
    if config.data_service and distribution.resolve(config.strategy) != "one_device":
        raise ConfigError("--data_service feeds one trainer: use it with --strategy=one_device")
    if config.augment_validation and on_device:
        raise ConfigError(
            "--augment_validation needs --augment_on=host: augmentation on the device runs "
            "inside the train step only, never on validation"
        )
    on_cpus = not tf.config.list_logical_devices("GPU")
    if xla and on_cpus and strategy.num_replicas_in_sync > 1:
        raise ConfigError(
            "--jit_compile=true cannot compile a step for several logical CPU devices "
            "(XLA refuses variables placed on another device): drop --jit_compile=true, or "
            "train on one device (--strategy=one_device)"
        )
    if on_device and not config.jit_augment and xla:
        raise ConfigError(
            "--nojit_augment cannot run inside an XLA-compiled train step (its projective-"
            "transform op has no XLA kernel): drop --nojit_augment, or use --augment_on=host "
            "or --jit_compile=false"
        )


def make_plan(config: TrainConfig) -> Plan:
    """Resolves the run's `auto` settings on this machine, once, and logs them.

    Raises:
      ConfigError: settings that cannot work here (named), e.g. a batch that does not
        divide among the replicas.
    """
    strategy = distribution.make_strategy(
        config.strategy, cpu_devices=config.cpu_devices, peer_timeout=config.peer_timeout
    )
    worker = distribution.worker_of(strategy)
    on_device = resolve_augment_on(config.augment_on) == "device"
    xla = model_lib.step_uses_xla(config.jit_compile)
    _check(config, strategy, on_device, xla)
    plan = Plan(
        strategy=strategy,
        worker=worker,
        replica_batch=distribution.replica_batch_size(config.batch_size, strategy),
        local_replicas=strategy.num_replicas_in_sync // worker.count,
        augmentation=make_augmentation(config),
        augment_on_device=on_device,
        xla=xla,
        input=input_options(config),
    )
    logging.info("plan: %s", describe(plan, config))
    return plan


def describe(plan: Plan, config: TrainConfig) -> str:
    """The plan in one line, saying where each `auto` (or a default the mode overrides) went."""
    options = plan.input
    if plan.augmentation is None:
        augmentation = "off"
    else:
        augmentation = "on the device" if plan.augment_on_device else "in tf.data"
    order = "deterministic" if options.deterministic else "nondeterministic"
    return (
        f"{type(plan.strategy).__name__} with {plan.strategy.num_replicas_in_sync} "
        f"replica(s) of batch {plan.replica_batch} (worker {plan.worker.index + 1} of "
        f"{plan.worker.count}); augmentation {augmentation} (--augment_on={config.augment_on}); "
        f"train step {'with' if plan.xla else 'without'} XLA (--jit_compile="
        f"{config.jit_compile}); {config.mixed_precision}; image cache {options.cache} "
        f"(--image_cache={config.image_cache}); {order} order"
        + (" (the tf.data service delivers as workers finish)" if config.data_service else "")
    )
