"""One live training run per model folder.

A run holds an exclusive `flock` on MODEL_DIR/.rps_tfdata.lock from before it reads the
folder until it ends; a second run aimed at the same folder is refused at once, naming the
process that holds it (written into the file by the holder). The kernel drops the lock when
its process ends, however it ends (SIGKILL and power loss included: nothing is left to
clean up), so a killed run never blocks the next one. The file itself stays in the folder:
removing a locked file would let the next run lock a new file of the same name while the
old holder still runs.

On NFS, Linux turns `flock` into a lock held by the server (NFSv4, or NFSv3 with lockd), so
runs on different hosts exclude each other there too. A file system that cannot lock
(some FUSE mounts), and any URL but `file://` (object stores have no locks), is said in
one warning, and the run goes on unguarded.
"""

import contextlib
import errno
import fcntl
import os
import socket
import time
from typing import Iterator

from absl import logging

from rps_tfdata.core import fs
from rps_tfdata.core.errors import FolderInUseError

LOCK_FILE = ".rps_tfdata.lock"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def _holder(fd: int) -> str:
    """What the lock file says of the process holding it ("" while it has not said yet)."""
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 512).decode(errors="replace").strip()


@contextlib.contextmanager
def hold(model_dir: str) -> Iterator[None]:
    """Holds `model_dir` for this process for the duration of the block.

    Raises:
      FolderInUseError: another live process holds the folder.
    """
    if fs.is_remote(model_dir):
        logging.warning(
            "%s is on a file system without locks: nothing stops a second run in this folder",
            model_dir,
        )
        yield
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
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
