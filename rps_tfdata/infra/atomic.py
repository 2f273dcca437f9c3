"""Writing files so that a kill never leaves a half-written one, and marking finished folders.

Every artifact goes to a temporary name in the same folder and is renamed into place
(`os.replace` is atomic on POSIX), so a reader sees the old file or the new one, never a
part. A folder built in several steps is marked complete last; a folder without its
marker is unfinished and is rebuilt. Temporary files and folders are created private
(0600, 0700) and a rename keeps the mode, so each is given the mode the user's umask
asks for before it is renamed: a teammate or a serving container can read the results
as it can read anything else the user writes.
"""

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from typing import Any, Callable, Iterator

from rps_tfdata.infra import fs
from rps_tfdata.infra.errors import ConfigError, UserError

_MARKER_FILE = ".rps_tfdata_complete"
_BUILDING_FILE = ".rps_tfdata_building"  # on object stores: a folder being written in place


@contextlib.contextmanager
def writing(path: str) -> Iterator[str]:
    """Yields a temporary path beside `path`; renames it to `path` if the block succeeds.

    The temporary name ends with `path`'s own name, so writers that insist on an
    extension (Keras: `.keras`, `.weights.h5`) accept it. On an object store the rename
    is a copy of a finished object, so a reader still sees the old file or the new one.
    """
    if fs.is_remote(path):
        yield from _remote_writing(path)
        return
    path = fs.local(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".", suffix=f".{os.path.basename(path)}", dir=folder)
    os.close(fd)
    os.chmod(temporary, 0o666 & ~umask())
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def writing_elsewhere_first(path: str) -> Iterator[str]:
    """`writing`, for writers that crash instead of raising on a full disk (h5py, under
    Keras' `.weights.h5` and `.keras` files, dies of SIGSEGV on ENOSPC): they write into
    the system's temporary folder, and the finished file is copied beside `path` by
    Python, whose write fails with an `OSError` (ENOSPC) like any other, then renamed."""
    with tempfile.TemporaryDirectory(prefix="rps_tfdata_") as scratch:
        local = os.path.join(scratch, os.path.basename(path))
        yield local
        with writing(path) as temporary, open(local, "rb") as source:
            with fs.open_file(temporary, "wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)


def _remote_writing(path: str) -> Iterator[str]:
    folder, name = os.path.split(path)
    fs.makedirs(folder)
    temporary = fs.join(folder, f".{uuid.uuid4().hex[:12]}.{name}")
    try:
        yield temporary
        fs.rename(temporary, path)
    finally:
        with contextlib.suppress(OSError):  # a store that stopped answering keeps it
            if fs.exists(temporary):
                fs.remove(temporary)


def umask() -> int:
    """The process's umask (read, not changed: from /proc where it can be, since setting
    it to read it back races with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(folder: str, flag: str) -> None:
    """Creates `folder` if needed and proves a file can be written in it.

    Raises:
      ConfigError: naming `flag` and the reason, before any work is spent.
    """
    try:
        fs.makedirs(folder)
        probe = fs.join(folder, f".write-test-{uuid.uuid4().hex[:12]}")
        with fs.open_file(probe, "w") as f:
            f.write("")
        fs.remove(probe)
    except OSError as e:
        raise ConfigError(
            f"{flag}={folder} cannot be written ({e.strerror or e}); choose a folder you can "
            "write to"
        ) from e


def write_text(path: str, text: str) -> str:
    """Writes `text` to `path` through a temporary file; returns the path."""
    with writing(path) as temporary, fs.open_file(temporary, "w") as f:
        f.write(text)
    return path


def write_bytes(path: str, data: bytes) -> str:
    """Writes `data` to `path` through a temporary file; returns the path."""
    with writing(path) as temporary, fs.open_file(temporary, "wb") as f:
        f.write(data)
    return path


def write_json(path: str, value: Any) -> str:
    """Writes `value` as indented JSON (keys sorted, final newline); returns the path."""
    return write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def is_complete(folder: str) -> bool:
    """Whether `folder` was finished by `build_folder`."""
    return fs.exists(fs.join(folder, _MARKER_FILE))


def build_folder(folder: str, build: Callable[[str], None], *, replace: bool = False) -> str:
    """Runs `build(staging)` in a staging folder beside `folder`, marks it complete, then
    moves it into place. Returns `folder`.

    A finished `folder` is returned untouched, unless `replace` (a new version swaps in
    for the old one). A killed build leaves only its staging folder, never an unmarked
    `folder`, so an unmarked `folder` is someone else's and is refused, never replaced.
    When another process finishes the same folder first, its folder is kept.

    Raises:
      UserError: `folder` exists but was not built here.
    """
    if is_complete(folder) and not replace:
        return folder
    building = fs.exists(fs.join(folder, _BUILDING_FILE))
    if fs.exists(folder) and not is_complete(folder) and not building:
        raise UserError(
            f"{folder} exists but was not written by rps_tfdata (no {_MARKER_FILE} in it); "
            "move it away or choose another folder"
        )
    if fs.is_remote(folder):
        return _build_in_place(folder, build)
    folder = fs.local(folder)
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.", dir=parent)
    os.chmod(staging, 0o777 & ~umask())
    old = staging + ".old"
    try:
        build(staging)
        open(os.path.join(staging, _MARKER_FILE), "w").close()
        if replace and os.path.exists(folder):
            os.replace(folder, old)
        try:
            os.replace(staging, folder)
        except OSError:
            if not is_complete(folder):  # another process finished the same folder first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _build_in_place(folder: str, build: Callable[[str], None]) -> str:
    """On an object store, where a folder cannot be renamed at once: the folder is
    emptied and built where it is, between a "building" marker written first and the
    completion marker written last. Readers wait for the completion marker; a killed
    build leaves the "building" marker, so the next build redoes it."""
    fs.rmtree(folder)
    fs.makedirs(folder)
    write_text(fs.join(folder, _BUILDING_FILE), "")
    build(folder)
    write_text(fs.join(folder, _MARKER_FILE), "")
    fs.remove(fs.join(folder, _BUILDING_FILE))
    return folder
