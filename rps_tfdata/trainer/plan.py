"""A run's plan: its settings checked, and every `auto` resolved once, against this machine.

`make_plan` checks the settings (`config.check_config`: what cannot work anywhere),
creates the `tf.distribute` strategy (first: a multi-worker strategy must exist before
TensorFlow runs any op), then decides once where and how augmentation runs, whether the
train step is XLA-compiled, each replica's share of the batch and how images are read
(the image cache from the counts the run's source gives);
it refuses what cannot work on this machine and logs the result in one line. Training,
the benchmarks, the GPU report and the parity run read the plan; nothing resolves a
setting twice, and the augmentation layer is built once. The rules take the machine's
facts (`Machine`) as an argument, so each is tested for a machine with GPUs too.
"""

import os
from typing import Callable, NamedTuple, Optional, Sequence

import tensorflow as tf
from absl import logging

from rps_tfdata.infra import resources
from rps_tfdata.infra.errors import ConfigError
from rps_tfdata.infra.resources import MemoryRoom
from rps_tfdata.pipeline.options import PipelineOptions
from rps_tfdata.pipeline.reading import cache_policy
from rps_tfdata.pipeline.transforms.augment import IDGAugmentation
from rps_tfdata.trainer import distribution
from rps_tfdata.trainer.config import SEED_AUGMENTATION, TrainConfig, check_config
from rps_tfdata.trainer.distribution import Worker

DISK_CACHE_FOLDER = "tf_data_cache"  # --image_cache=disk's folder, inside the run's


class Machine(NamedTuple):
    """What the `auto` settings depend on: the accelerators TensorFlow sees."""

    gpus: int = 0  # physical GPUs
    accelerators: int = 0  # physical devices that are not CPUs (GPUs, TPUs)


def this_machine() -> Machine:
    """This machine's facts (listing physical devices starts no runtime)."""
    devices = tf.config.list_physical_devices()
    return Machine(
        gpus=sum(d.device_type == "GPU" for d in devices),
        accelerators=sum(d.device_type != "CPU" for d in devices),
    )


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
    input: PipelineOptions

    @property
    def host_augmentation(self) -> Optional[IDGAugmentation]:
        """The layer the tf.data pipeline applies, if it augments."""
        return None if self.augment_on_device else self.augmentation

    @property
    def device_augmentation(self) -> Optional[IDGAugmentation]:
        """The layer the train step applies, if it augments."""
        return self.augmentation if self.augment_on_device else None


def augments_on_device(augment_on: str, machine: Machine) -> bool:
    """ "auto": on the device when a GPU is visible (the host would starve it), else on
    the host (a CPU "device" is the host anyway, and the tf.data threads overlap it)."""
    return augment_on == "device" or (augment_on == "auto" and machine.gpus > 0)


def step_uses_xla(jit_compile: str, machine: Machine) -> bool:
    """Whether the train step is XLA-compiled: "auto" does what Keras' `jit_compile="auto"`
    does, compiling when any accelerator is visible (slower on CPUs, as measured)."""
    return jit_compile == "true" or (jit_compile == "auto" and machine.accelerators > 0)


def strategy_name(strategy: str, machine: Machine) -> str:
    """ "auto": mirrored when several GPUs are visible, else one device."""
    if strategy == "auto":
        return "mirrored" if machine.gpus > 1 else "one_device"
    return strategy


def input_options(config: TrainConfig) -> PipelineOptions:
    """How a run reads images: the image cache and determinism resolved (the tf.data
    service's workers read files and deliver as they finish; other runs keep the order
    and ask for the memory cache, which `fit_image_cache` confirms or turns to disk once
    the images are counted), and the disk cache inside the run's folder."""
    service = bool(config.data_service)
    cache = config.image_cache if config.image_cache != "auto" else "none" if service else "memory"
    deterministic = config.deterministic if config.deterministic is not None else not service
    return PipelineOptions(
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


def fit_image_cache(
    options: PipelineOptions, requested: str, counts: Sequence[int], room: MemoryRoom
) -> PipelineOptions:
    """The memory cache only when the splits of `counts` images fit
    (`cache_policy.choose`): else `auto` caches on disk, and an explicit
    `--image_cache=memory` is refused before any decode.

    Raises:
      ConfigError: `--image_cache=memory` that does not fit.
    """
    if options.cache != "memory":
        return options
    try:
        choice = cache_policy.choose(requested, counts, options.pixel_shape, room)
    except cache_policy.MemoryCacheTooLargeError as e:
        raise ConfigError(
            f"--image_cache=memory: {e}; use --image_cache=disk, or a smaller --image_size"
        ) from e
    settled = "memory" if choice.cache == "memory" else "disk, not memory"
    logging.info("image cache %s (--image_cache=%s): %s", settled, requested, choice.need)
    return options._replace(cache=choice.cache)


def make_augmentation(config: TrainConfig) -> Optional[IDGAugmentation]:
    """The seed's IDG augmentation, or None with --augment=none."""
    if config.augment == "none":
        return None
    return IDGAugmentation(**SEED_AUGMENTATION, seed=config.seed, jit_compile=config.jit_augment)


def machine_problem(
    config: TrainConfig, machine: Machine, *, replicas: int, on_device: bool, xla: bool
) -> Optional[str]:
    """What cannot work on this machine once the `auto` values are resolved, or None."""
    if config.data_service and strategy_name(config.strategy, machine) != "one_device":
        return "--data_service feeds one trainer: use it with --strategy=one_device"
    if config.augment_validation and on_device:
        return (
            "--augment_validation needs --augment_on=host: augmentation on the device runs "
            "inside the train step only, never on validation"
        )
    if xla and not machine.gpus and replicas > 1:
        return (
            "--jit_compile=true cannot compile a step for several logical CPU devices (XLA "
            "refuses variables placed on another device): drop --jit_compile=true, or train "
            "on one device (--strategy=one_device)"
        )
    if on_device and not config.jit_augment and xla:
        return (
            "--nojit_augment cannot run inside an XLA-compiled train step (its projective-"
            "transform op has no XLA kernel): drop --nojit_augment, or use --augment_on=host "
            "or --jit_compile=false"
        )
    return None


def make_plan(
    config: TrainConfig,
    *,
    image_counts: Optional[Callable[[Worker], Optional[Sequence[int]]]] = None,
    strategy_override: Optional[str] = None,
) -> Plan:
    """Checks the run's settings and resolves its `auto` values on this machine, once,
    and logs them.

    Args:
      config: the run's settings.
      image_counts: the images this worker's cache would hold, per split, from the
        run's source (`Source.image_counts`); the image cache is decided from them
        (`fit_image_cache`). Without them, or when the source holds decoded images
        already (None), the cache is the one `input_options` asks for.
      strategy_override: the strategy the measuring tools use (they measure one
        device), in place of `--strategy`.

    Raises:
      ConfigError: settings that cannot work (named), e.g. a batch that does not
        divide among the replicas.
    """
    if strategy_override:
        config = config._replace(strategy=strategy_override)
    check_config(config)
    machine = this_machine()
    strategy = distribution.make_strategy(
        strategy_name(config.strategy, machine),
        cpu_devices=config.cpu_devices,
        peer_timeout=config.peer_timeout,
    )
    worker = distribution.worker_of(strategy)
    on_device = augments_on_device(config.augment_on, machine)
    xla = step_uses_xla(config.jit_compile, machine)
    replicas = strategy.num_replicas_in_sync
    problem = machine_problem(config, machine, replicas=replicas, on_device=on_device, xla=xla)
    if problem:
        raise ConfigError(problem)
    options = input_options(config)
    counts = image_counts(worker) if image_counts else None
    if counts is not None:
        options = fit_image_cache(options, config.image_cache, counts, resources.memory_room())
    plan = Plan(
        strategy=strategy,
        worker=worker,
        replica_batch=distribution.replica_batch_size(config.batch_size, strategy),
        local_replicas=replicas // worker.count,
        augmentation=make_augmentation(config),
        augment_on_device=on_device,
        xla=xla,
        input=options,
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
