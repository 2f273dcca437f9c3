"""Running an entry point: one-line user errors, argument checks, flagfiles of a run.

Library modules never read FLAGS; each entry point reads its flags and calls a library
function with plain arguments. Nothing here imports TensorFlow.
"""

import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags, logging

from rps_tfdata.core.errors import UserError

# Extras the measuring tools need beyond the product's dependencies.
BENCH_MODULES = ("PIL", "scipy")


def _fail(error: Exception) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


def run(main: Callable[[Sequence[str]], None]) -> None:
    """`app.run(main)`, turning a UserError into a one-line message and exit status 1.

    Errors a user can fix (a wrong path, a broken download, a bad layout) name the file
    or flag at fault; anything else is a bug and keeps its traceback.
    """

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
