"""Where the images come from: the official RPS zips, downloaded, verified and cached.

`fetch_rps` downloads `rps.zip` (training, 2,520 images) and `rps-test-set.zip` (372
images) once, checks size and sha256 (the values TFDS pins for `rock_paper_scissors`),
extracts them without letting an archive write outside its folder, and afterwards works
offline from the cache. A mirror can replace the base URL (flag or environment variable).
"""

import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from typing import NamedTuple, Optional, TextIO

from absl import logging

from rps_tfdata.infra import atomic
from rps_tfdata.infra.errors import DownloadError

DEFAULT_BASE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/"
BASE_URL_ENV = "RPS_TFDATA_BASE_URL"
CLASS_NAMES = ("paper", "rock", "scissors")  # the set's folders, in label order
DEFAULT_DOWNLOAD_DIR = os.path.join(os.path.expanduser("~"), ".keras", "datasets")
_CHUNK = 1 << 20


class RemoteZip(NamedTuple):
    """A pinned archive: file name, size in bytes, sha256, and the folder it unpacks to."""

    name: str
    size: int
    sha256: str
    folder: str


RPS_TRAIN = RemoteZip(
    "rps.zip", 200682221, "c2403444395842ad04c53612bad54b574443eae17a0723117a2ff87b9d72194f", "rps"
)
RPS_TEST = RemoteZip(
    "rps-test-set.zip",
    29516758,
    "c27ab9fa43ce40b2e453de711365b477f4424586edf0388116674fd320f07503",
    "rps-test-set",
)


class RpsDirs(NamedTuple):
    """The extracted class-per-folder directories."""

    train_dir: str
    test_dir: str


def resolve_base_url(base_url: Optional[str] = None) -> str:
    """The flag's value, else $RPS_TFDATA_BASE_URL, else the official bucket; ends in '/'."""
    url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def sha256_of(path: str) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Progress:
    """Download progress on one line of a terminal, or a log line every 10% otherwise."""

    def __init__(self, name: str, total: int, stream: TextIO = sys.stderr):
        self._name, self._total, self._stream = name, total, stream
        self._start, self._last_decile = time.monotonic(), -1
        self._tty = stream.isatty()

    def update(self, done: int) -> None:
        fraction = done / self._total if self._total else 1.0
        rate = done / max(time.monotonic() - self._start, 1e-6) / 2**20
        text = (
            f"{self._name}: {done / 2**20:.1f}/{self._total / 2**20:.1f} MiB "
            f"({fraction:.0%}, {rate:.1f} MiB/s)"
        )
        if self._tty:
            self._stream.write("\r" + text + ("\n" if done >= self._total else ""))
            self._stream.flush()
        elif int(fraction * 10) > self._last_decile:
            self._last_decile = int(fraction * 10)
            logging.info("downloading %s", text)


def download(url: str, dest: str, remote: RemoteZip, *, progress: bool = True) -> None:
    """Downloads `url` to `dest` and verifies it against `remote`'s size and sha256.

    The bytes go to a temporary file of this process beside `dest`, renamed only once
    verified: an interrupted or corrupt download never looks complete, and two runs
    downloading at once each write their own file (the second rename replaces the first
    with the same bytes).

    Raises:
      DownloadError: the server could not be reached or sent other bytes (a network
        problem), or the file could not be written here (a local one); the message says
        which.
    """
    with atomic.writing(dest) as partial:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except (urllib.error.URLError, OSError) as e:
            raise _network_error(url, e) from e
        with response, open(partial, "wb", buffering=0) as out:  # write errors show at write
            _copy(response, out, url, _Progress(remote.name, remote.size) if progress else None)
        _verify(partial, remote, url)


# The end of a message about a write that failed here, not on the network's side.
_LOCAL_PROBLEM = (
    "This is a local problem (disk full? permissions?), not the network's: free space or "
    "set --download_dir to another folder"
)


def _network_error(url: str, error: Exception) -> DownloadError:
    return DownloadError(
        f"could not download {url}: {error}. Check the network, set --base_url or "
        f"${BASE_URL_ENV} to a mirror, or pass --data_dir=FOLDER"
    )


def _copy(response, out, url: str, bar: Optional["_Progress"]) -> None:
    """Streams the response to `out`, telling a network failure from a local one."""
    done = 0
    while True:
        try:
            chunk = response.read(_CHUNK)
        except OSError as e:  # includes timeouts and resets: the network's side
            raise _network_error(url, e) from e
        if not chunk:
            return
        try:
            view = memoryview(chunk)
            while view:  # an unbuffered write may be short; the next one raises the error
                view = view[out.write(view) :]
        except OSError as e:
            raise DownloadError(
                f"could not write the download of {url} to {out.name}: {e.strerror or e}. "
                f"{_LOCAL_PROBLEM}"
            ) from e
        done += len(chunk)
        if bar:
            bar.update(done)


def _verify(path: str, remote: RemoteZip, url: str) -> None:
    size = os.path.getsize(path)
    problem = None
    if size != remote.size:
        problem = f"{size} bytes, expected {remote.size}"
    elif (digest := sha256_of(path)) != remote.sha256:
        problem = f"sha256 {digest}, expected {remote.sha256}"
    if problem:
        _remove(path)
        raise DownloadError(
            f"{remote.name} from {url} is corrupt ({problem}); the file was deleted. "
            "Retry, or use another mirror (--base_url)"
        )


def _remove(path: str) -> None:
    if os.path.exists(path):
        os.remove(path)


def safe_extract(zip_path: str, dest: str) -> None:
    """Extracts `zip_path` into `dest`, refusing members that would land outside it.

    Raises:
      DownloadError: the archive is not a zip or holds an absolute or `..` path.
    """
    root = os.path.realpath(dest)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for member in archive.infolist():
                target = os.path.realpath(os.path.join(root, member.filename))
                if os.path.commonpath([root, target]) != root:
                    raise DownloadError(
                        f"{zip_path} holds {member.filename!r}, which would be written outside "
                        f"{dest}; refusing to extract it"
                    )
            archive.extractall(root)
    except zipfile.BadZipFile as e:
        raise DownloadError(
            f"{zip_path} is not a valid zip archive ({e}); delete it and retry"
        ) from e


def fetch(
    remote: RemoteZip, download_dir: str, base_url: Optional[str] = None, *, progress: bool = True
) -> str:
    """Returns the extracted folder of `remote` under `download_dir`, fetching it if needed.

    A finished extraction is marked, so later runs (offline ones too) reuse it at once; an
    interrupted one is redone. A cached zip is re-verified before use and replaced if bad.
    """
    folder = os.path.join(download_dir, remote.folder)
    if atomic.is_complete(folder):
        return folder
    atomic.check_writable(download_dir, "--download_dir")
    zip_path = os.path.join(download_dir, remote.name)
    url = resolve_base_url(base_url) + remote.name
    if os.path.exists(zip_path):
        try:
            _verify(zip_path, remote, zip_path)
        except DownloadError as e:
            logging.warning("%s; downloading it again", e)
    if not os.path.exists(zip_path):
        logging.info("downloading %s to %s", url, zip_path)
        download(url, zip_path, remote, progress=progress)
    try:
        return atomic.build_folder(
            folder, lambda staging: _extract_folder(zip_path, remote, staging)
        )
    except OSError as e:
        raise DownloadError(
            f"could not extract {zip_path} into {folder}: {e.strerror or e}. {_LOCAL_PROBLEM}"
        ) from e


def _extract_folder(zip_path: str, remote: RemoteZip, staging: str) -> None:
    """Extracts the archive's top-level `remote.folder` as the contents of `staging`."""
    scratch = tempfile.mkdtemp(prefix=".extract-", dir=staging)
    try:
        safe_extract(zip_path, scratch)
        extracted = os.path.join(scratch, remote.folder)
        if not os.path.isdir(extracted):
            raise DownloadError(f"{zip_path} has no top-level folder {remote.folder!r}")
        for name in os.listdir(extracted):
            os.replace(os.path.join(extracted, name), os.path.join(staging, name))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch_rps(
    download_dir: str = DEFAULT_DOWNLOAD_DIR,
    base_url: Optional[str] = None,
    *,
    progress: bool = True,
    train: RemoteZip = RPS_TRAIN,
    test: RemoteZip = RPS_TEST,
) -> RpsDirs:
    """Downloads (once) and extracts the official training and test sets."""
    return RpsDirs(
        fetch(train, download_dir, base_url, progress=progress),
        fetch(test, download_dir, base_url, progress=progress),
    )
