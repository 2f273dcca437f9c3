"""Which share of a subset this process reads when several workers train one model:
every `count`-th image from its `index`, chosen by the image's id before anything is
decoded (the trainer's training split, and a flow built under
`MultiWorkerMirroredStrategy`). Each image keeps its id, so its augmentation does not
depend on the number of workers.
"""

import json
import os
from typing import NamedTuple

import tensorflow as tf


class Shard(NamedTuple):
    """Worker `index` of `count`; the default is the whole subset."""

    index: int = 0
    count: int = 1

    def ids(self, total: int) -> range:
        """The ids this shard holds of a subset of `total` images."""
        return range(self.index, total, self.count)


WHOLE = Shard()  # one worker: every image


def of_strategy(strategy: tf.distribute.Strategy) -> Shard:
    """This process's shard under `strategy`: its place among the workers of a
    `MultiWorkerMirroredStrategy` (the cluster of $TF_CONFIG, the chief first), else the
    whole subset."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return WHOLE
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    jobs, task = config.get("cluster", {}), config.get("task", {})
    chiefs = len(jobs.get("chief", []))
    count = chiefs + len(jobs.get("worker", []))
    if count < 2:
        return WHOLE
    index = int(task["index"]) + (chiefs if task["type"] == "worker" else 0)
    return Shard(index, count)
