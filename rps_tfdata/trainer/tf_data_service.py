"""The tf.data service: decoding and augmentation on other processes or hosts.

A dispatcher hands out work; workers run the input pipeline and stream batches to the
trainer. The trainer's epochs use the "distributed_epoch" processing mode: the source
(the epoch's images 0..n-1 in its order) is split dynamically among the workers,
so an epoch holds each image at most once (not once per worker, as "parallel_epochs"
would). What it gives up: the order of images and the make-up of batches depend on which
worker is faster; each image's augmentation does not (its seed is (seed, epoch, image)).
"""

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from typing import Callable, Iterator

import tensorflow as tf

from rps_tfdata.infra.errors import ConfigError

PROTOCOL = "grpc"


def start_dispatcher(
    port: int = 0, *, work_dir: str = "", worker_timeout_seconds: float = 10.0
) -> tf.data.experimental.service.DispatchServer:
    """A running dispatcher; with `work_dir` it journals its state there and survives a
    restart (fault-tolerant mode). A worker silent for `worker_timeout_seconds` is dropped,
    so a trainer waits that long at most for a worker that died."""
    config = tf.data.experimental.service.DispatcherConfig(
        port=port,
        protocol=PROTOCOL,
        work_dir=work_dir or None,
        fault_tolerant_mode=bool(work_dir),
        worker_timeout_ms=int(worker_timeout_seconds * 1000),
    )
    return tf.data.experimental.service.DispatchServer(config)


def start_worker(
    dispatcher_address: str, port: int = 0, *, host: str = "localhost"
) -> tf.data.experimental.service.WorkerServer:
    """A running worker registered with the dispatcher at HOST:PORT, which tells
    trainers to reach it at `host` (TensorFlow's default, localhost, serves only
    trainers on the worker's own machine)."""
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=dispatcher_address,
        worker_address=f"{host}:%port%",  # TensorFlow puts the port it serves on there
        port=port,
        protocol=PROTOCOL,
    )
    return tf.data.experimental.service.WorkerServer(config)


def address_of(service: str) -> str:
    """The dispatcher's address from `grpc://HOST:PORT` (or plain HOST:PORT).

    Raises:
      ConfigError: not of that form.
    """
    address = service.removeprefix(f"{PROTOCOL}://")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"--data_service={service!r} is not a dispatcher address; pass grpc://HOST:PORT"
        )
    return address


# --data_service_compression -> `distribute`'s `compression`.
COMPRESSIONS = {"auto": "AUTO", "snappy": "SNAPPY", "none": None}


def distribute(
    dataset: tf.data.Dataset, service: str, job: str, compression: str = "auto"
) -> tf.data.Dataset:
    """`dataset` produced by the service's workers, each element at most once, crossing
    compressed as `compression` (a key of COMPRESSIONS) says."""
    return dataset.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
            service=f"{PROTOCOL}://{address_of(service)}",
            job_name=job,
            compression=COMPRESSIONS[compression],
        )
    )


def job_prefix() -> str:
    """A name no other trainer uses: a job of the same name would share its elements."""
    return f"rps_tfdata-{uuid.uuid4().hex[:12]}"


def _answers(address: str) -> bool:
    """Whether something accepts connections at HOST:PORT (the dispatcher's port)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
            return True
    except OSError:
        return False


class ServiceWatch:
    """A bound on every wait on the tf.data service: the dispatcher silent, or no batch
    while an epoch waits for one, for `timeout_seconds` ends the process (exit 1) with
    one line. The service's client retries forever inside a blocking call that no signal
    reaches, so ending the process is the only bound; `guard` is a lock held while state
    is written (a checkpoint), during which the process is never ended."""

    def __init__(self, address: str, timeout_seconds: float, then: Callable[[], str]):
        self.address = address
        self.timeout = timeout_seconds
        self.guard = threading.Lock()
        self._then = then  # what was saved and what to do, for the line
        self._waiting_since = None  # set while an epoch waits for batches
        self._stop = threading.Event()

    def feed(self, batches: Iterator) -> Iterator:
        """`batches`, with the wait for each one bounded."""
        self._waiting_since = time.monotonic()
        try:
            for batch in batches:
                yield batch
                self._waiting_since = time.monotonic()
        finally:
            self._waiting_since = None

    def _end(self, problem: str) -> None:
        with self.guard:
            if self._stop.is_set():
                return
            print(f"error: {problem}; {self._then()}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(1)

    def run(self) -> None:
        """The watching thread's loop: one look a second."""
        last_answer = time.monotonic()
        while not self._stop.wait(1.0):
            now = time.monotonic()
            if _answers(self.address):
                last_answer = now
            elif now - last_answer > self.timeout:
                self._end(
                    f"the tf.data service dispatcher at {self.address} is gone (no answer for "
                    f"{self.timeout:g} s, --data_service_timeout)"
                )
            waiting = self._waiting_since
            if waiting is not None and now - waiting > self.timeout:
                self._end(
                    f"the tf.data service at {self.address} sent no batch for "
                    f"{self.timeout:g} s (--data_service_timeout): are its workers gone?"
                )

    def stop(self) -> None:
        with self.guard:
            self._stop.set()


@contextlib.contextmanager
def watch_service(
    service: str, timeout_seconds: float, then: Callable[[], str]
) -> Iterator[ServiceWatch]:
    """A running `ServiceWatch` of the dispatcher at `service` for the block;
    `then()` ends its line (what was saved, what to do)."""
    watch = ServiceWatch(address_of(service), timeout_seconds, then)
    threading.Thread(target=watch.run, name="service-watch", daemon=True).start()
    try:
        yield watch
    finally:
        watch.stop()
