"""Folders anywhere TensorFlow can reach: a local path, `file://`, or a URL of a file
system registered with TensorFlow (`gs://` built in, `ram://` in memory, `s3://` and
`hdfs://` through their plug-ins).

Local paths and `file://` URLs go through `os`, which keeps IDG's listing semantics
exactly (symlinked folders not followed, FIFOs seen as such); other URLs go through
`tf.io.gfile`, imported only then (so that modules which never touch a URL stay free of
TensorFlow), and its errors become the `OSError`s that local code already handles.
Object stores rename by copying and have no locks: callers that need a rename to be
atomic say what they do instead (`atomic.build_folder` marks a folder complete last).
"""

import contextlib
import errno
import glob as globbing
import os
import shutil
from concurrent import futures
from typing import IO, Callable, Iterable, Iterator, NamedTuple, Optional, Sequence, TypeVar

_FILE = "file://"
# Requests in flight when a call is made for many files of a remote file system: a
# bucket answers each in tens of milliseconds, so 1.3 M files need many at once (64:
# their stats take about 8 minutes at 25 ms each). A local disk answers from its page
# cache faster than threads hand work around (measured: one thread about 2x faster).
REMOTE_REQUESTS = 64
# Calls between two reports to `for_each`'s `progress` (a report costs a clock read).
PROGRESS_EVERY = 256
_T = TypeVar("_T")
# File systems whose listings end a subfolder's name with "/" (GCS's and S3's prefixes).
MARKS_FOLDERS = ("gs://", "s3://")


class Stat(NamedTuple):
    size: int
    mtime_ns: int  # 0 where the file system keeps none (ram://)
    is_regular: bool  # a plain file (not a folder, FIFO, socket or device)


def is_remote(path: str) -> bool:
    """A URL that is not `file://`: served through `tf.io.gfile`."""
    return "://" in path and not path.startswith(_FILE)


def for_each(
    call: Callable[[str], _T],
    paths: Sequence[str],
    progress: Optional[Callable[[int], None]] = None,
) -> list[_T]:
    """[call(path) for path in paths], with REMOTE_REQUESTS calls at once when the paths
    are remote (the calls wait on the network, not on Python). `progress` is told how
    many calls, in order, have ended: every PROGRESS_EVERY calls and once at the end.
    An error (a call's, or `progress`'s) cancels the calls not yet started."""
    if not paths or not is_remote(paths[0]):
        return _counted((call(path) for path in paths), progress)
    pool = futures.ThreadPoolExecutor(REMOTE_REQUESTS)
    try:
        return _counted(pool.map(call, paths), progress)
    finally:
        pool.shutdown(cancel_futures=True)


def _counted(results: Iterable[_T], progress: Optional[Callable[[int], None]]) -> list[_T]:
    """`results` as a list, `progress` told the count every PROGRESS_EVERY and once at
    the end."""
    if progress is None:
        return list(results)
    done: list[_T] = []
    for result in results:
        done.append(result)
        if len(done) % PROGRESS_EVERY == 0:
            progress(len(done))
    if not done or len(done) % PROGRESS_EVERY:
        progress(len(done))
    return done


def local(path: str) -> str:
    """`path` with a `file://` scheme removed (other paths unchanged)."""
    return path[len(_FILE) :] if path.startswith(_FILE) else path


def root(path: str) -> str:
    """The file system and bucket of a URL ("gs://bucket"); "" for a local path."""
    if not is_remote(path):
        return ""
    scheme, _, rest = path.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def join(folder: str, *names: str) -> str:
    return os.path.join(folder, *names)


@contextlib.contextmanager
def _as_oserror(path: str) -> Iterator[None]:
    """`tf.io.gfile`'s errors as the `OSError`s of the same meaning."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.NotFoundError as e:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path) from e
    except tf.errors.PermissionDeniedError as e:
        raise PermissionError(errno.EACCES, "Permission denied", path) from e
    except tf.errors.OpError as e:
        raise OSError(errno.EIO, e.message, path) from e


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(local(path))


def lexists(path: str) -> bool:
    """Exists, or is a link (a dangling one included)."""
    return _gfile().exists(path) if is_remote(path) else os.path.lexists(local(path))


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(local(path))


def isfile(path: str) -> bool:
    """Whether a file (not a folder) is at `path`."""
    return exists(path) and not isdir(path)


def listdir(path: str) -> list[str]:
    if not is_remote(path):
        return os.listdir(local(path))
    with _as_oserror(path):
        return [name.rstrip("/") for name in _gfile().listdir(path)]


def walk(path: str, follow_links: bool = False) -> Iterator[tuple[str, list[str], list[str]]]:
    """(folder, subfolders, files) below `path`; symlinked folders followed only with
    `follow_links` (local folders: an object store has no links).

    An object store's listing names subfolders with a trailing "/" (`MARKS_FOLDERS`),
    so one listing a folder is enough there (`tf.io.gfile.walk` asks again for every
    entry whether it is a folder: two requests per file on a bucket).
    """
    if path.startswith(MARKS_FOLDERS):
        yield from _listed_walk(path.rstrip("/"))
        return
    if is_remote(path):
        yield from _gfile().walk(path)
        return
    start = local(path)
    for folder, subfolders, names in os.walk(start, followlinks=follow_links):
        yield path + folder[len(start) :], subfolders, names


def _listed_walk(folder: str) -> Iterator[tuple[str, list[str], list[str]]]:
    with _as_oserror(folder):
        entries = _gfile().listdir(folder)
    subfolders = [name.rstrip("/") for name in entries if name.endswith("/")]
    yield folder, subfolders, [name for name in entries if not name.endswith("/")]
    for name in subfolders:
        yield from _listed_walk(join(folder, name))


def glob(pattern: str) -> list[str]:
    """The paths matching `pattern` (`*` within a name), sorted."""
    if not is_remote(pattern):
        found = globbing.glob(local(pattern))
        prefix = pattern[: len(pattern) - len(local(pattern))]  # file:// kept
        return sorted(prefix + path for path in found)
    with _as_oserror(pattern):
        return sorted(_gfile().glob(pattern))


def makedirs(path: str) -> None:
    if not is_remote(path):
        os.makedirs(local(path), exist_ok=True)
        return
    with _as_oserror(path):
        _gfile().makedirs(path)


def stat(path: str) -> Stat:
    """Raises OSError (FileNotFoundError where it is missing), as `os.stat` does."""
    if is_remote(path):
        with _as_oserror(path):
            found = _gfile().stat(path)
        return Stat(found.length, found.mtime_nsec, not found.is_directory)
    found = os.stat(local(path))
    return Stat(found.st_size, found.st_mtime_ns, (found.st_mode & 0o170000) == 0o100000)


class _RemoteFile:
    """A `tf.io.gfile.GFile` whose errors are `OSError`s."""

    def __init__(self, path: str, mode: str):
        self._path = path
        with _as_oserror(path):
            self._file = _gfile().GFile(path, mode)

    def __getattr__(self, name):
        method = getattr(self._file, name)

        def call(*args, **kwargs):
            with _as_oserror(self._path):
                return method(*args, **kwargs)

        return call

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with _as_oserror(self._path):
            self._file.close()


def open_file(path: str, mode: str = "r") -> IO:
    """The file at `path`; on a URL, opened through `tf.io.gfile` (read, write, seek)."""
    return _RemoteFile(path, mode) if is_remote(path) else open(local(path), mode)


def rename(source: str, target: str) -> None:
    """Replaces `target` with `source` (atomic on local disks; a copy on object stores)."""
    if not is_remote(source):
        os.replace(local(source), local(target))
        return
    with _as_oserror(source):
        _gfile().rename(source, target, overwrite=True)


def remove(path: str) -> None:
    if not is_remote(path):
        os.remove(local(path))
        return
    with _as_oserror(path):
        _gfile().remove(path)


def rmtree(path: str) -> None:
    """Removes a folder and everything in it; a missing one is no error."""
    if not is_remote(path):
        shutil.rmtree(local(path), ignore_errors=True)
    elif _gfile().exists(path):
        with _as_oserror(path):
            _gfile().rmtree(path)


def printable(path: str) -> str:
    """`path` as one printable line: bytes that are not UTF-8 as \\xNN, and control
    characters (a newline in a name) escaped, so that messages and listings stay one line."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
