"""What the command-line entry points share: error reporting, argument checks, flagfiles.

Library modules never read FLAGS; each entry point reads its flags and calls a library
function with plain arguments.
"""

import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags, logging

from rps_tfdata.index import DatasetLayoutError
from rps_tfdata.sources import DownloadError
from rps_tfdata.training import ConfigError

# Errors a user can fix (a wrong path, a broken download, a bad layout): reported as one
# line naming the file or flag at fault, without a traceback. Anything else is a bug and
# keeps its traceback.
USER_ERRORS = (ConfigError, DatasetLayoutError, DownloadError, FileNotFoundError)


def _fail(error: Exception) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


def run(main: Callable[[Sequence[str]], None]) -> None:
    """`app.run(main)`, turning USER_ERRORS into a one-line message and exit status 1."""

    def guarded(argv: Sequence[str]) -> None:
        try:
            main(argv)
        except USER_ERRORS as e:
            logging.debug("user error", exc_info=True)
            _fail(e)

    app.run(guarded)


def reject_positional(argv: Sequence[str]) -> None:
    """For entry points that take flags only: a stray argument is a usage error."""
    if len(argv) > 1:
        raise app.UsageError(
            f"unexpected arguments {list(argv[1:])}; this command takes flags only"
        )


def serialize_flags(*modules) -> str:
    """The current values of the flags defined in `modules`, as a reusable flagfile."""
    lines = []
    for module in modules:
        for flag in flags.FLAGS.get_flags_for_module(module):
            text = flag.serialize()
            if text:
                lines.append(text)
    return "\n".join(sorted(lines)) + "\n"
