"""One live training run per model folder.

A run holds an exclusive `flock` on MODEL_DIR/.rps_tfdata.lock from before it reads the
folder until it ends; a second run aimed at the same folder is refused at once, naming the
process that holds it (written into the file by the holder). The kernel drops the lock when
its process ends, however it ends (SIGKILL and power loss included: nothing is left to
clean up), so a killed run never blocks the next one. The file itself stays in the folder:
removing a locked file would let the next run lock a new file of the same name while the
old holder still runs.

On NFS, Linux turns `flock` into a lock held by the server (NFSv4, or NFSv3 with lockd), so
runs on different hosts exclude each other there too. A local file system that cannot
lock (some FUSE mounts) is said in one warning, and the run goes on unguarded.

An object store (any URL but `file://`) has no locks, and no way to write an object only
if another is absent through `tf.io.gfile`; there the last run to start owns the folder:
it writes an owner object (`OWNER_FILE`) with a token of its own, and before every save a
run reads it back (`RunLock.check`) and stops, saving nothing, when another run has written
its own since. Two runs started on one bucket folder therefore never both go on saving:
the later one continues the run (a rerun of a killed run is such a later one), the other
stops at its next save with one line naming it.
"""

import contextlib
import errno
import fcntl
import os
import socket
import time
import uuid
from typing import Iterator

from absl import logging

from rps_tfdata.infra import atomic, fs
from rps_tfdata.infra.errors import FolderInUseError

LOCK_FILE = ".rps_tfdata.lock"
OWNER_FILE = ".rps_tfdata.owner"  # on object stores: the run that started last
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _holder(fd: int) -> str:
    """What the lock file says of the process holding it ("" while it has not said yet)."""
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 512).decode(errors="replace").strip()


def _who() -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"pid {os.getpid()} on {socket.gethostname()}, since {started}"


class RunLock:
    """This process's hold on a run folder: `check()` before every save."""

    def __init__(self, model_dir: str, token: str = ""):
        self._model_dir = model_dir
        self._token = token  # on an object store: what the owner object must still say

    def check(self) -> None:
        """Raises FolderInUseError when another run has taken over the folder (object
        stores; a local lock cannot be taken while it is held)."""
        if not self._token:
            return
        with fs.open_file(os.path.join(self._model_dir, OWNER_FILE)) as f:
            token, _, holder = f.read().partition("\n")
        if token != self._token:
            raise FolderInUseError(
                f"--model_dir={self._model_dir} was taken over by a run started later "
                f"({holder.strip()}); this run stops without saving, and that run goes on "
                "from the last save"
            )


def _own(model_dir: str) -> RunLock:
    """On an object store: this run writes itself in as the folder's owner."""
    token = uuid.uuid4().hex
    atomic.write_text(os.path.join(model_dir, OWNER_FILE), f"{token}\n{_who()}\n")
    logging.warning(
        "%s is on a file system without locks: a run started later in this folder takes it "
        "over (this one then stops at its next save)",
        model_dir,
    )
    return RunLock(model_dir, token)


@contextlib.contextmanager
def locked(model_dir: str) -> Iterator[RunLock]:
    """Holds `model_dir` for this process for the duration of the block.

    Raises:
      FolderInUseError: another live process holds the (local) folder.
    """
    if fs.is_remote(model_dir):
        yield _own(model_dir)
        return
    model_dir = fs.local(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in _NO_LOCKS:
                logging.warning(
                    "%s cannot be locked (%s): nothing stops a second run in this folder",
                    path,
                    e.strerror,
                )
            elif e.errno in (errno.EAGAIN, errno.EACCES):
                holder = _holder(fd) or "another process"
                raise FolderInUseError(
                    f"--model_dir={model_dir} is in use by a training run that is still going "
                    f"({holder}); wait for it to end, or use another --model_dir"
                ) from e
            else:
                raise
        else:
            os.ftruncate(fd, 0)
            os.write(fd, f"{_who()}\n".encode())
        yield RunLock(model_dir)
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
