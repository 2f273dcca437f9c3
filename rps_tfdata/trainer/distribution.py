"""Where training runs: one device, several local devices, or several workers.

One custom loop serves every strategy (Keras 3's `fit` fails under
`MultiWorkerMirroredStrategy`: BUILD.md). `--batch_size` stays the GLOBAL batch, split
evenly among replicas, so 32 keeps the seed's learning dynamics on any number of them.
"""

import json
import os
import re
from typing import NamedTuple

import tensorflow as tf

from rps_tfdata.infra.errors import ConfigError
from rps_tfdata.pipeline import shards


class Worker(NamedTuple):
    """This process's place in the cluster: its index, the number of workers, and
    whether it is the chief (the only one that writes artifacts)."""

    index: int = 0
    count: int = 1
    is_chief: bool = True


def make_strategy(
    name: str, *, cpu_devices: int = 1, peer_timeout: float = 600.0
) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy of a resolved `--strategy` value (`plan.strategy_name`).

    mirrored: every local GPU, else every logical CPU device; `cpu_devices` > 1 splits
    the CPU into that many (to try `mirrored` without GPUs); multi_worker: the cluster in
    TF_CONFIG, each collective bounded by `peer_timeout` seconds (a peer that hangs then
    fails the step instead of holding every worker forever).
    """
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        tf.config.set_logical_device_configuration(cpu, logical)
    if name == "multi_worker":
        # Before anything initialises TensorFlow's runtime (listing logical devices does):
        # collective ops can only be configured at startup.
        if "TF_CONFIG" not in os.environ:
            raise ConfigError(
                "--strategy=multi_worker needs the cluster in $TF_CONFIG (every worker's "
                'host:port and this one\'s {"type": "worker", "index": N}); see the README'
            )
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=peer_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    # On logical CPUs the replicas' sums meet on one device. TensorFlow's collectives
    # would key each strategy's ops from counters that every new strategy restarts, so
    # a second strategy made in the same process (tests, benchmarks) would be matched
    # with the first one's ops ("Shape mismatch in the collective instance").
    return tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")],
        cross_device_ops=tf.distribute.ReductionToOneDevice(),
    )


def worker_of(strategy: tf.distribute.Strategy) -> Worker:
    """This process's index among the workers, and whether it is the chief."""
    shard = shards.of_strategy(strategy)
    return Worker(shard.index, shard.count, shard.index == 0)


def replica_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The global batch's share of one replica.

    Raises:
      ConfigError: the batch does not divide among the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ConfigError(
            f"--batch_size={batch_size} does not divide among the {replicas} replicas of "
            f"this strategy; use a multiple of {replicas}"
        )
    return batch_size // replicas


# What a collective raises when a peer is gone or silent.
PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
    tf.errors.DeadlineExceededError,
)


def peer_of(error: tf.errors.OpError) -> str:
    """The other worker a collective's error names ("worker 1 at HOST:PORT"), or "a
    worker" (the error may name this worker too: the first other one is taken)."""
    if "TF_CONFIG" not in os.environ:
        return "a worker"
    cluster = json.loads(os.environ["TF_CONFIG"])
    me = (cluster["task"]["type"], int(cluster["task"]["index"]))
    for job, task in re.findall(r"/job:(\w+)/replica:\d+/task:(\d+)", error.message):
        if (job, int(task)) != me:
            addresses = cluster["cluster"].get(job, [])
            where = f" at {addresses[int(task)]}" if int(task) < len(addresses) else ""
            return f"{job} {task}{where}"
    return "a worker"


def failure_of(error: tf.errors.OpError) -> str:
    """What a failed collective said, in one line."""
    found = re.search(r"Collective ops is aborted by: ([^\n]+)", error.message)
    return found.group(1).strip() if found else type(error).__name__
