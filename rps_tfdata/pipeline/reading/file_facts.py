"""What a start knows of each listed image file before any decode: its size, its
modification time, and whether its headers rule it out; read once per start.

One pass reads them: a stat and the header's first and last bytes per file, many at once
on a remote file system (`fs.for_each`). They give the data's fingerprint (the run's
`data_files` setting and the disk cache's name) and the header screen, so no file is
stat'ed or opened twice. On a remote file system the pass costs requests per file at
every start, so the chief keeps the facts in the run's folder (`file_index.json.gz`),
and a later start of the run reuses them when one listing of the data shows the same
files: a restart then pays for the listing's pages, not for every file. A file rewritten
in place under the same name between two starts is therefore not noticed on a bucket (it
is on local disks, where the pass runs at every start): give a changed file a new name.
"""

import gzip
import hashlib
import json
import os
from typing import Any, Callable, NamedTuple, Optional, Sequence

from absl import logging

from rps_tfdata.infra import atomic, fs
from rps_tfdata.pipeline.reading import headers, progress

INDEX_FILE = "file_index.json.gz"  # in the run's folder, on remote file systems only


class Facts(NamedTuple):
    """One listed file, as a start knows it before decoding it."""

    size: Optional[int]  # None: it could not be stat'ed
    modified: Any  # its modification time (ns), or why the stat failed (a dangling link)
    problem: Optional[str]  # why its headers rule it out; None: it looks decodable


def read_one(path: str) -> Facts:
    """The facts of `path`: one stat and one read of its header."""
    try:
        status = fs.stat(path)
    except OSError as e:
        reason = e.strerror or str(e)
        return Facts(None, reason, f"unreadable ({reason})")
    return Facts(status.size, status.mtime_ns, headers.inspect_header(path, status))


def _index_path(model_dir: str) -> str:
    return os.path.join(model_dir, INDEX_FILE)


def _stored(model_dir: str, paths: Sequence[str]) -> Optional[list[Facts]]:
    """The facts the run's folder keeps, if they are of exactly these files."""
    path = _index_path(model_dir)
    if not fs.exists(path):
        return None
    with fs.open_file(path, "rb") as f:
        stored = json.loads(gzip.decompress(f.read()))
    if stored["paths"] != list(paths):
        logging.info("the data's files changed since %s was written: reading them again", path)
        return None
    return [Facts(*facts) for facts in stored["facts"]]


def gather(
    paths: Sequence[str], model_dir: str, say: Callable[[str], None] = logging.info
) -> tuple[list[Facts], bool]:
    """The facts of every file of a listing, in its order, and whether they came from
    the run's file index (on a remote file system, when it lists the same files); a
    read of them that takes more than a few seconds says how far it is through `say`."""
    remote = bool(paths) and fs.is_remote(paths[0])
    stored = _stored(model_dir, paths) if remote else None
    if stored is not None:
        return stored, True
    return read_all(paths, say), False


def read_all(paths: Sequence[str], say: Callable[[str], None] = logging.info) -> list[Facts]:
    """`read_one` of each file, many at once on a remote file system; a read that takes
    more than a few seconds (a bucket of a million files takes minutes) says how far it
    is through `say`."""
    what = f"Reading the stats and headers of {len(paths):,} files"
    return progress.for_each_file(what, read_one, paths, say)


def keep(model_dir: str, paths: Sequence[str], facts: Sequence[Facts]) -> None:
    """Writes the facts into the run's folder, for the next start of the run."""
    text = json.dumps({"paths": list(paths), "facts": [list(f) for f in facts]})
    with atomic.writing(_index_path(model_dir)) as temporary:
        with fs.open_file(temporary, "wb") as f:
            f.write(gzip.compress(text.encode()))


def fingerprint(paths: Sequence[str], facts: Sequence[Facts], *extra: Any) -> str:
    """A short digest of files (path, size, modification time) and `extra` values: it
    changes when any file is added, removed, replaced or rewritten."""
    identities = [[path, f.size, f.modified] for path, f in zip(paths, facts, strict=True)]
    key = json.dumps([identities, *extra])
    return hashlib.sha256(key.encode()).hexdigest()[:16]
