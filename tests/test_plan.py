"""The plan: each `auto` resolved for a machine with and without GPUs, the rules that
depend on the machine, and the one line that says what became of each setting."""

import logging

import pytest

from rps_tfdata.infra import resources
from rps_tfdata.infra.errors import ConfigError
from rps_tfdata.infra.resources import MemoryRoom
from rps_tfdata.pipeline.reading import cache_policy
from rps_tfdata.trainer import plan

from .helpers import small_run

CPU_ONLY = plan.Machine(gpus=0, accelerators=0)
ONE_GPU = plan.Machine(gpus=1, accelerators=1)
TWO_GPUS = plan.Machine(gpus=2, accelerators=2)


def test_augmentation_goes_to_the_device_only_where_a_gpu_would_starve():
    assert not plan.augments_on_device("auto", CPU_ONLY)
    assert plan.augments_on_device("auto", ONE_GPU)
    assert plan.augments_on_device("device", CPU_ONLY)  # asked for: a CPU "device" is the host
    assert not plan.augments_on_device("host", ONE_GPU)


def test_the_strategy_mirrors_only_over_several_gpus():
    assert plan.strategy_name("auto", CPU_ONLY) == "one_device"
    assert plan.strategy_name("auto", ONE_GPU) == "one_device"
    assert plan.strategy_name("auto", TWO_GPUS) == "mirrored"
    assert plan.strategy_name("multi_worker", TWO_GPUS) == "multi_worker"


def problem(machine, replicas=1, *, on_device=False, xla=False, **changes):
    config = small_run("d", "m", **changes)
    return plan.machine_problem(config, machine, replicas=replicas, on_device=on_device, xla=xla)


def test_xla_over_several_logical_cpus_is_refused_but_not_over_gpus():
    """TensorFlow's XLA fails such a step with a traceback about variables on another
    device; the plan refuses it first, in one line."""
    assert "cannot compile a step for several logical CPU" in problem(CPU_ONLY, 2, xla=True)
    assert problem(TWO_GPUS, 2, xla=True) is None
    assert problem(CPU_ONLY, 1, xla=True) is None


def test_the_data_service_feeds_one_trainer_whatever_auto_becomes():
    service = {"data_service": "grpc://h:1"}
    assert problem(CPU_ONLY, **service) is None
    assert "--data_service feeds one trainer" in problem(TWO_GPUS, **service)  # auto: mirrored
    assert "--data_service feeds one trainer" in problem(CPU_ONLY, strategy="mirrored", **service)


def test_validation_augmentation_needs_the_host():
    refused = problem(ONE_GPU, on_device=True, augment_validation=True)
    assert refused.startswith("--augment_validation needs --augment_on=host")
    assert problem(ONE_GPU, on_device=False, augment_validation=True) is None


def test_the_stock_warp_cannot_run_inside_an_xla_step():
    refused = problem(ONE_GPU, on_device=True, xla=True, jit_augment=False)
    assert refused.startswith("--nojit_augment cannot run inside an XLA")
    for allowed in ({"on_device": False, "xla": True}, {"on_device": True, "xla": False}):
        assert problem(ONE_GPU, jit_augment=False, **allowed) is None
    assert problem(ONE_GPU, on_device=True, xla=True, jit_augment=True) is None


def test_make_plan_refuses_what_this_machine_cannot_do_in_one_line():
    with pytest.raises(ConfigError, match="--nojit_augment cannot run inside an XLA"):
        plan.make_plan(
            small_run("d", "m", augment_on="device", jit_augment=False, jit_compile="true")
        )
    with pytest.raises(ConfigError, match="--batch_size=7 does not divide among the 2"):
        plan.make_plan(small_run("d", "m", strategy="mirrored", cpu_devices=2, batch_size=7))


def test_make_plan_checks_the_settings_first():
    with pytest.raises(ConfigError, match="--epochs=0: must be at least 1"):
        plan.make_plan(small_run("d", "m", epochs=0))


def test_the_augmentation_follows_the_mode_and_the_seed():
    assert plan.make_augmentation(small_run("d", "m", augment="none")) is None
    layer = plan.make_augmentation(small_run("d", "m", seed=5))
    assert layer.get_config()["rotation_range"] == 40 and layer.seed == 5


def test_the_service_takes_the_defaults_it_needs_and_the_line_says_so():
    config = small_run("d", "m", data_service="grpc://127.0.0.1:1")
    run_plan = plan.make_plan(config)  # no --image_cache=none or --nodeterministic needed
    assert (run_plan.input.cache, run_plan.input.deterministic) == ("none", False)
    logged = plan.describe(run_plan, config)
    assert "image cache none (--image_cache=auto); nondeterministic order" in logged
    local = plan.make_plan(small_run("d", "m"))
    assert (local.input.cache, local.input.deterministic) == ("memory", True)
    assert "OneDeviceStrategy with 1 replica(s) of batch 8" in plan.describe(local, config)


def test_the_memory_cache_is_kept_only_where_the_decoded_splits_fit(caplog):
    options = plan.input_options(small_run("d", "m", image_size=150))
    counts = [2016, 504]  # the seed's split: 2016 training, 504 validation images at 150 px
    peak_mb = 67_500 * (2016 + 504 + 2016) / 2**20  # 67.5 KB an image, the largest copied
    # kept where half the room is training's, and at least ROOM_FOR_TRAINING_MB of it
    least = max(2 * peak_mb, peak_mb + cache_policy.ROOM_FOR_TRAINING_MB)
    assert (
        plan.fit_image_cache(options, "auto", counts, MemoryRoom(least + 1, "")).cache == "memory"
    )
    tight = MemoryRoom(least - 1, "the memory limit of cgroup /x (900 MB, 10 MB in use)")
    with caplog.at_level(logging.INFO, logger="absl"):
        assert plan.fit_image_cache(options, "auto", counts, tight).cache == "disk"
    assert f"takes up to {peak_mb:.0f} MB" in caplog.text
    assert "image cache disk, not memory (--image_cache=auto)" in caplog.text
    assert "cgroup /x" in caplog.text
    with pytest.raises(ConfigError, match="^--image_cache=memory: the memory cache of 2520"):
        plan.fit_image_cache(options, "memory", counts, tight)
    big = MemoryRoom(2 * least + 1, "MemAvailable")
    assert plan.fit_image_cache(options, "auto", [2 * n for n in counts], big).cache == "memory"
    small = MemoryRoom(cache_policy.ROOM_FOR_TRAINING_MB, "MemAvailable")  # training alone
    assert plan.fit_image_cache(options, "auto", [1, 1], small).cache == "disk"
    none = options._replace(cache="none")
    assert plan.fit_image_cache(none, "none", counts, small) is none


def test_the_plan_decides_the_image_cache_from_the_sources_counts_and_says_it():
    config = small_run("d", "m", image_size=150)
    asked = []

    def counts(worker):
        asked.append(worker.index)
        return [10**9, 10**8]  # more decoded images than any machine holds

    huge = plan.make_plan(config, image_counts=counts)
    assert asked == [0] and huge.input.cache == "disk"
    assert "image cache disk (--image_cache=auto)" in plan.describe(huge, config)
    few = plan.make_plan(config, image_counts=lambda worker: [3, 1])
    assert few.input.cache == "memory"
    assert "image cache memory (--image_cache=auto)" in plan.describe(few, config)
    decoded = plan.make_plan(config, image_counts=lambda worker: None)  # TFDS: in memory
    assert decoded.input.cache == "memory"


def test_the_room_is_the_least_of_the_machine_and_each_memory_limit_above():
    # The machine's free memory moves while the test reads it (other processes, the
    # other test worker): the room is bracketed by two reads, with a little slack.
    before = resources._meminfo_room()
    room = resources.memory_room()
    after = resources._meminfo_room()
    assert 0 < room.mb <= max(before.mb, after.mb) + 16
    assert room.bound == "MemAvailable" or room.bound.startswith("the memory limit of cgroup ")
