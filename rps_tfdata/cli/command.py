"""How every command starts and ends: TensorFlow started quietly, one line for a user's
error, argument checks, the flagfile of a run.

Library modules never read FLAGS and change nothing process-wide when imported; a
command does both, here, when it starts (as Flax's and big_vision's binaries do). The
entry points import no TensorFlow at module level, so `run` can start it without its C++
start-up lines (oneDNN, CUDA stubs, `cuInit` on machines without a GPU) unless the user
chose how much to see: `TF_CPP_MIN_LOG_LEVEL` in the environment, or absl's
`--verbosity`/`-v`, wins.
"""

import logging as std_logging
import os
import sys
import tempfile
from typing import Callable, NoReturn, Sequence

from absl import app, flags, logging

from rps_tfdata.infra.errors import UserError

# Extras the measuring tools need beyond the product's dependencies.
BENCH_MODULES = ("PIL", "scipy")
# Printed while TensorFlow's libraries load, before its logging reads any setting.
_STARTUP_CHATTER = (
    "WARNING: All log messages before absl::InitializeLog() is called",
    "port.cc:",
    "cudart_stub.cc:",
    "cpu_feature_guard.cc:",
    "To enable the following instructions:",
)
# Logged through absl's Python logger (ours too) at every checkpoint and export.
_TENSORFLOW_CHATTER = (
    "Sharding callback duration",
    "Assets written to",
    "Writing fingerprint to",
    "Function `serve` contains input name(s)",
)


def _fail(error: Exception) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


def _user_chose_logging(argv: Sequence[str]) -> bool:
    verbosity = ("--verbosity", "-v", "--v")
    return "TF_CPP_MIN_LOG_LEVEL" in os.environ or any(
        arg.split("=")[0] in verbosity for arg in argv[1:]
    )


def _import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its load-time lines dropped; anything else it prints on the
    way (a real import problem) is passed on."""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not any(marker in line for marker in _STARTUP_CHATTER):
                    sys.stderr.write(line)


def start_quietly(argv: Sequence[str]) -> None:
    """This process's logging, set once when a command starts: TensorFlow imported without
    its start-up lines and its Python INFO lines, and absl's logger without TensorFlow's
    chatter; nothing changes where the user chose a log level."""
    if not _user_chose_logging(argv):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
        if "tensorflow" not in sys.modules:
            _import_tensorflow_quietly()
    logging.get_absl_logger().addFilter(
        lambda record: not record.getMessage().startswith(_TENSORFLOW_CHATTER)
    )


def run(main: Callable[[Sequence[str]], None]) -> None:
    """Starts the command (`start_quietly`), then `app.run(main)`, turning a UserError
    into a one-line message and exit status 1.

    Errors a user can fix (a wrong path, a broken download, a bad layout) name the file
    or flag at fault; anything else is a bug and keeps its traceback.
    """
    start_quietly(sys.argv)

    def guarded(argv: Sequence[str]) -> None:
        try:
            main(argv)
        except UserError as e:
            logging.debug("user error", exc_info=True)
            _fail(e)

    app.run(guarded)


def require_bench_extras(command: str) -> None:
    """Exits with one line when pillow or scipy (the `[bench]` extra) is missing."""
    for module in BENCH_MODULES:
        try:
            __import__(module)
        except ImportError:
            _fail(
                UserError(
                    f"{command} runs Keras' ImageDataGenerator, which needs {module}: "
                    "pip install 'rps_tfdata[bench]'"
                )
            )


def reject_positional(argv: Sequence[str]) -> None:
    """For entry points that take flags only: a stray argument is a usage error."""
    if len(argv) > 1:
        raise app.UsageError(
            f"unexpected arguments {list(argv[1:])}; this command takes flags only"
        )


def serialize_flags(holders: Sequence[flags.FlagHolder]) -> str:
    """The current values of these flags, as a flagfile that repeats the command."""
    lines = (flags.FLAGS[holder.name].serialize() for holder in holders)
    return "\n".join(sorted(line for line in lines if line)) + "\n"
