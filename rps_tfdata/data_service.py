"""Runs a tf.data service dispatcher or worker until it is stopped (SIGTERM, Ctrl-C).

    python -m rps_tfdata.data_service --dispatcher --port=P [--work_dir=D]
    python -m rps_tfdata.data_service --worker --dispatcher_address=HOST:P [--port=Q]
        [--worker_host=NAME]

Then `python -m rps_tfdata.train --data_service=grpc://HOST:P ...` trains on batches the
workers decode and augment. Each process prints one line with its address when it is
ready. A worker on another machine than its trainers says with `--worker_host` the name
or address they reach it at. A dispatcher with `--work_dir` journals its state and
survives a restart on the same port; a worker whose dispatcher has not answered for
`--data_service_timeout` seconds stops with one line (exit 1).
"""

from typing import Sequence

from absl import app

from rps_tfdata.cli import command, flag_defs

_F = flag_defs.define(
    "dispatcher",
    "worker",
    "port",
    "work_dir",
    "dispatcher_address",
    "worker_host",
    "worker_timeout",
    "data_service_timeout",
)


def main(argv: Sequence[str]) -> None:
    from rps_tfdata.trainer import tf_data_service  # here: TensorFlow starts with the command

    command.reject_positional(argv)
    if _F.dispatcher.value == _F.worker.value:
        raise app.UsageError("pass exactly one of --dispatcher and --worker")
    if _F.dispatcher.value:
        server = tf_data_service.start_dispatcher(
            _F.port.value,
            work_dir=_F.work_dir.value or "",
            worker_timeout_seconds=_F.worker_timeout.value,
        )
        print(f"dispatcher ready at {server.target}", flush=True)
        server.join()
        return
    if not _F.dispatcher_address.value:
        raise app.UsageError("--worker needs --dispatcher_address=HOST:PORT")
    address = tf_data_service.address_of(_F.dispatcher_address.value)
    server = tf_data_service.start_worker(address, _F.port.value, host=_F.worker_host.value)
    print(f"worker ready, serving {address}'s jobs", flush=True)
    then = lambda: "this worker stops: start it again with the dispatcher"  # noqa: E731
    with tf_data_service.watch_service(address, _F.data_service_timeout.value, then):
        server.join()


def run() -> None:
    """Console-script entry point (`rps-data-service`)."""
    command.run(main)


if __name__ == "__main__":
    run()
