"""A run under a real memory limit: training processes in a cgroup (v1 `memory`
controller) of the test's own, whose limit the kernel enforces by killing the process.

The data are 1,800 small PNGs read at 192 px: decoded, the training and validation
splits take 0.36 GB at the memory cache's peak, which the limit below leaves no room for
beside training (a run that cached them in memory was killed by the kernel at that limit,
during the first read), while a run that caches on disk fits (BUILD.md, "A memory limit").
"""

import os
import re

import pytest

from . import sandbox
from .helpers import launch, module, stopped_at_exit

pytestmark = pytest.mark.slow  # real training processes under a real memory limit

LIMIT_MB = 1000
FLAGS = ("--image_size=192", "--batch_size=8", "--epochs=1", "--seed=3")


@pytest.fixture(scope="module")
def many_small_images(tmp_path_factory) -> str:
    from rps_tfdata.trainer import synthetic_hands

    out = str(tmp_path_factory.mktemp("many_small_images"))
    synthetic_hands.write_dataset(out, 600, size=32, seed=4)
    return out


def _train_limited(cgroup: str, data_dir: str, model_dir: str, *extra: str) -> tuple[int, str]:
    """The training command run to its end inside `cgroup`: (exit status, output)."""
    log = model_dir + ".log"
    flags = [f"--data_dir={data_dir}", f"--model_dir={model_dir}", *FLAGS, *extra]
    process = launch(module("train", *flags), log=log, prefix=sandbox.join_command(cgroup))
    with stopped_at_exit(process):
        status = process.wait(timeout=600)
    with open(log) as f:
        return status, f.read()


def _oom_kills(cgroup: str) -> int:
    with open(os.path.join(cgroup, "memory.oom_control")) as f:
        return int(dict(line.split() for line in f).get("oom_kill", 0))


def test_auto_caches_on_disk_where_the_memory_cache_would_not_fit(many_small_images, tmp_path):
    with sandbox.memory_limit(LIMIT_MB) as cgroup:
        status, output = _train_limited(cgroup, many_small_images, str(tmp_path / "run"))
        assert (status, _oom_kills(cgroup)) == (0, 0), output[-3000:]
    assert "image cache disk (--image_cache=auto)" in output  # the plan says what auto became
    assert re.search(
        r"image cache disk, not memory \(--image_cache=auto\): the memory cache of 1800 images "
        r"at 192x192 takes up to 342 MB, and this process may use \d+ MB more \(the memory "
        rf"limit of cgroup {re.escape(cgroup)} \({LIMIT_MB} MB, \d+ MB in use\)\)",
        output,
    ), output[-3000:]
    assert os.listdir(tmp_path / "run" / "tf_data_cache")


def test_a_memory_cache_that_cannot_fit_is_refused_before_any_decode(many_small_images, tmp_path):
    with sandbox.memory_limit(LIMIT_MB) as cgroup:
        status, output = _train_limited(
            cgroup, many_small_images, str(tmp_path / "run"), "--image_cache=memory"
        )
        assert (status, _oom_kills(cgroup)) == (1, 0), output[-3000:]
    errors = [line for line in output.splitlines() if "--image_cache=memory: " in line]
    assert len(errors) == 1 and "Traceback" not in output, output[-3000:]
    assert errors[0].endswith("use --image_cache=disk, or a smaller --image_size"), errors
    assert "decoded" not in output  # stopped before the first image was decoded
