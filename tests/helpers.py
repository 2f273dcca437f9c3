"""What the tests share besides fixtures (those are in `conftest.py`): where the
repository is, the bundled real images, small image files, the settings of a small run,
free ports, and real processes, started from the repository and stopped by their id."""

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 60 real RPS training images at 28x28 (20 per class), shipped with the tests: see
# tests/data/README.md for where they come from and their licence.
RPS28 = os.path.join(ROOT, "tests", "data", "rps28")


def write_png(path: str, image: np.ndarray) -> str:
    """Writes a uint8 (h, w, c) array as PNG, creating folders."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(path, tf.io.encode_png(image))
    return path


def png_bytes(seed=0, size=(24, 24)):
    image = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    import tensorflow as tf

    return tf.io.encode_png(image).numpy()


def bomb_png():
    """A valid little PNG whose header claims 20,000 x 20,000 pixels (a decompression bomb
    as far as any reader that trusts the header is concerned)."""
    data = bytearray(png_bytes())
    header = b"IHDR" + struct.pack(">II", 20_000, 20_000) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", 20_000, 20_000)
    data[29:33] = struct.pack(">I", zlib.crc32(header))
    return bytes(data)


def corrupt_png():
    """Right signature, header and end, but image data the decoder rejects."""
    data = bytearray(png_bytes(size=(40, 40)))
    start = data.index(b"IDAT") + 4
    data[start : start + 40] = bytes(40)
    return bytes(data)


def decoded_pixels(split) -> np.ndarray:
    """A labelled split's images as its evaluation batches carry them (uint8 at the
    run's size, training's resize done), the last batch's padding left out: what a
    client that decodes and resizes itself sends."""
    from rps_tfdata.trainer import inputs

    batches = inputs.evaluation_batches(split)
    pixels = np.concatenate([np.asarray(images) for images, _ in batches])
    return pixels[: split.prepared.count].astype(np.uint8)


def small_run(data_dir: str, model_dir, **changes):
    """The `TrainConfig` of a run that trains in seconds: 48-pixel images, batches of 8,
    one epoch, unless `changes` say otherwise."""
    from rps_tfdata.trainer.config import TrainConfig

    settings = {"epochs": 1, "image_size": 48, "batch_size": 8, **changes}
    return TrainConfig(data_dir=str(data_dir), model_dir=str(model_dir), **settings)


# The finished run's epochs (the `finished_run` fixture of conftest.py).
FINISHED_EPOCHS = 2


def finished_config(synthetic_dir: str, held_out_dir: str, model_dir, **changes):
    """The settings of the `finished_run` fixture, in `model_dir`."""
    epochs = changes.pop("epochs", FINISHED_EPOCHS)
    return small_run(synthetic_dir, model_dir, test_dir=held_out_dir, epochs=epochs, **changes)


def small_run_flags(data_dir: str, model_dir, *extra: str) -> list[str]:
    """`small_run`'s settings as `train` flags, then `extra` (later flags win)."""
    base = [f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--epochs=1"]
    return [*base, "--image_size=48", "--batch_size=8", *extra]


def free_ports(count: int = 1) -> list[int]:
    """Ports free on 127.0.0.1 now (held together while they are picked, so distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def module(name: str, *args: str) -> list[str]:
    """The arguments of `python -m rps_tfdata.NAME ARGS`."""
    return ["-m", f"rps_tfdata.{name}", *args]


def _environment(env: Optional[dict], quiet: bool = True) -> dict:
    """This process's environment with `env` over it; `quiet`: TensorFlow's C++ lines off,
    else the variable that sets them removed (the child then decides)."""
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**base, **({"TF_CPP_MIN_LOG_LEVEL": "3"} if quiet else {}), **(env or {})}


def launch(
    arguments: Sequence[str],
    *,
    env: Optional[dict] = None,
    log: Optional[str] = None,
    merge: bool = False,
    prefix: Sequence[str] = (),
) -> subprocess.Popen:
    """`python ARGUMENTS` (`module(...)`, or "-c", SCRIPT, ...) started from the
    repository, TensorFlow's C++ lines off: output appended to the file `log`, else to
    text pipes (stderr into stdout with `merge`). `prefix`: a command that runs it
    (in a network namespace, a cgroup: `tests/sandbox.py`)."""
    if log is not None:
        out = open(log, "a")
        err = subprocess.STDOUT
    else:
        out, err = subprocess.PIPE, subprocess.STDOUT if merge else subprocess.PIPE
    process = subprocess.Popen(
        [*prefix, sys.executable, *arguments],
        stdout=out,
        stderr=err,
        text=True,
        cwd=ROOT,
        env=_environment(env),
    )
    if log is not None:
        out.close()  # the child holds its own descriptor
    return process


def run_python(
    arguments: Sequence[str],
    *,
    env: Optional[dict] = None,
    timeout: float = 600,
    quiet: bool = True,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """`python ARGUMENTS` from the repository, to its end; output captured (`quiet` and
    `prefix`: as for `launch`)."""
    return subprocess.run(
        [*prefix, sys.executable, *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_environment(env, quiet),
        timeout=timeout,
    )


@contextlib.contextmanager
def stopped_at_exit(*processes: subprocess.Popen) -> Iterator[None]:
    """Kills the processes (by their own id) when the block ends, however it ends: a
    hung or failed test never leaves one behind."""
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 240):
    """Polls `condition` while `process` runs; fails if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the process ended before the moment it was waited for"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def read_until(process: subprocess.Popen, text: str) -> str:
    """The process's output (a text pipe) up to and including the first line with `text`."""
    seen = ""
    for line in process.stdout:
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"the process ended without printing {text!r}: {seen[-3000:]}")


# The resume tests' job: 3 epochs of 48 synthetic images at 150 px in batches of 4 (12
# steps an epoch, about a second each here), so a signal can land inside an epoch.
RESUME_EPOCHS = 3


def start_resume_job(data_dir: str, model_dir: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """The resume tests' training process, its output appended to MODEL_DIR.log:
    (process, log)."""
    log = os.path.join(os.path.dirname(model_dir), os.path.basename(model_dir) + ".log")
    flags = [f"--data_dir={data_dir}", f"--model_dir={model_dir}", f"--epochs={RESUME_EPOCHS}"]
    return launch(module("train", *flags, "--batch_size=4", "--seed=11", *extra), log=log), log


def finish_resume_job(data_dir: str, model_dir: str, *extra: str) -> str:
    """The resume tests' job run to its end (it must succeed); its log."""
    process, log = start_resume_job(data_dir, model_dir, *extra)
    with stopped_at_exit(process):
        assert process.wait(timeout=300) == 0, open(log).read()[-3000:]
    return log


def printed(log: str, text: str) -> bool:
    with open(log) as f:
        return text in f.read()


def history_of(model_dir: str) -> list[list[str]]:
    """history.csv's learning figures, epoch by epoch (not the timings)."""
    import csv

    with open(os.path.join(model_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    keys = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
    return [[row[k] for k in keys] for row in rows]


def final_weights_of(model_dir: str) -> list[np.ndarray]:
    """The model weights of the run's last checkpoint (the end of training, not the best
    epoch)."""
    import tensorflow as tf

    from rps_tfdata.trainer import run_state

    newest = run_state.saved_checkpoints(os.path.join(model_dir, "checkpoints"))[0]
    reader = tf.train.load_checkpoint(newest)
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("model/"))
    return [reader.get_tensor(n) for n in names]


def assert_same_final_weights(model_dir: str, reference: str) -> None:
    """The two runs' last checkpoints hold the same model weights, bit for bit."""
    ours, theirs = final_weights_of(model_dir), final_weights_of(reference)
    assert len(ours) == len(theirs)
    for mine, other in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine, other)


def serve(*args, prefix=()):
    """A data-service process, ready when it has printed its line."""
    process = launch(module("data_service", *args), prefix=prefix)
    assert "ready" in process.stdout.readline()
    return process


@contextlib.contextmanager
def service(workers=2, worker_timeout=2.0, port=None):
    """A dispatcher and `workers` workers; yields (address, worker processes)."""
    port = port or free_ports()[0]
    processes = [serve("--dispatcher", f"--port={port}", f"--worker_timeout={worker_timeout}")]
    with stopped_at_exit(*processes):
        workers = [
            serve("--worker", f"--dispatcher_address=127.0.0.1:{port}") for _ in range(workers)
        ]
        with stopped_at_exit(*workers):
            yield f"grpc://127.0.0.1:{port}", workers
