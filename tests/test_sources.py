"""Downloads against a local HTTP server on 127.0.0.1 serving zips the test builds."""

import contextlib
import functools
import hashlib
import http.server
import io
import os
import threading
import time
import zipfile

import pytest

from rps_tfdata.infra.errors import UserError
from rps_tfdata.pipeline.reading import listing
from rps_tfdata.trainer import download

from . import sandbox
from .helpers import launch, stopped_at_exit


def make_zip(folder, files):
    """Zip bytes holding `folder/<relative path>` for each entry of `files`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for relative, data in files.items():
            archive.writestr(f"{folder}/{relative}" if folder else relative, data)
    return buffer.getvalue()


def pinned(name, folder, data):
    return download.RemoteZip(name, len(data), hashlib.sha256(data).hexdigest(), folder)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory):
    """An HTTP server for `directory` on 127.0.0.1 at a free port; yields its base URL."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll: shutdown() waits for the loop's next look (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mirror"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(tmp_path):
    """Serves an rps-like train zip and test zip; yields (base_url, train, test, root)."""
    root = tmp_path / "www" / "mirror"
    root.mkdir(parents=True)
    train = make_zip("rps", {"rock/rock01-000.png": b"r", "paper/p.png": b"p"})
    test = make_zip("rps-test-set", {"rock/t.png": b"t", "paper/u.png": b"u"})
    (root / "rps.zip").write_bytes(train)
    (root / "rps-test-set.zip").write_bytes(test)
    with serve(tmp_path / "www") as url:
        yield (
            url,
            pinned("rps.zip", "rps", train),
            pinned("rps-test-set.zip", "rps-test-set", test),
            root,
        )


def test_fetch_downloads_verifies_extracts_then_works_offline(tmp_path, mirror):
    url, train, test, _ = mirror
    cache = str(tmp_path / "cache")
    dirs = download.fetch_rps(cache, url, progress=False, train=train, test=test)
    assert listing.list_all(dirs.train_dir).class_names == ["paper", "rock"]
    assert os.path.isfile(os.path.join(dirs.test_dir, "rock", "t.png"))
    offline = download.fetch_rps(cache, "http://127.0.0.1:9/unreachable", train=train, test=test)
    assert offline == dirs


def test_base_url_from_environment(tmp_path, mirror, monkeypatch):
    url, train, _, _ = mirror
    monkeypatch.setenv(download.BASE_URL_ENV, url)
    assert download.resolve_base_url() == url + "/"
    folder = download.fetch(train, str(tmp_path / "cache"), progress=False)
    assert os.path.isdir(os.path.join(folder, "rock"))
    assert download.resolve_base_url("http://flag.example/x/") == "http://flag.example/x/"


def test_checksum_mismatch_deletes_the_file_and_says_so(tmp_path, mirror):
    url, train, _, _ = mirror
    wrong = train._replace(sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(download.DownloadError, match="corrupt .*sha256.*deleted"):
        download.fetch(wrong, str(cache), url, progress=False)
    assert not list(cache.glob("rps.zip*"))


def test_size_mismatch_is_reported(tmp_path, mirror):
    url, train, _, _ = mirror
    with pytest.raises(download.DownloadError, match=f"{train.size} bytes, expected 1"):
        download.fetch(train._replace(size=1), str(tmp_path / "cache"), url, progress=False)


def test_unreachable_server_names_url_and_remedies(tmp_path, mirror):
    url, train, _, _ = mirror
    with pytest.raises(download.DownloadError, match=r"missing\.zip.*--base_url.*--data_dir"):
        download.fetch(train._replace(name="missing.zip"), str(tmp_path / "c"), url, progress=False)


def test_corrupt_cached_zip_is_downloaded_again(tmp_path, mirror):
    url, train, _, _ = mirror
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "rps.zip").write_bytes(b"truncated")
    folder = download.fetch(train, str(cache), url, progress=False)
    assert os.path.isfile(os.path.join(folder, "paper", "p.png"))
    assert download.sha256_of(str(cache / "rps.zip")) == train.sha256


def test_a_folder_the_package_did_not_write_is_refused_and_kept(tmp_path, mirror):
    url, train, _, _ = mirror
    cache = tmp_path / "cache"
    (cache / "rps" / "rock").mkdir(parents=True)  # the user's own folder: no marker
    (cache / "rps" / "rock" / "mine.png").write_bytes(b"x")
    with pytest.raises(UserError, match=r"rps exists but was not written by rps_tfdata"):
        download.fetch(train, str(cache), url, progress=False)
    assert os.listdir(cache / "rps" / "rock") == ["mine.png"]


def test_an_interrupted_extraction_leaves_no_folder_and_is_redone(tmp_path, mirror, monkeypatch):
    url, train, _, _ = mirror
    cache = tmp_path / "cache"

    def killed(zip_path, dest):
        os.makedirs(os.path.join(dest, "rps", "rock"))
        raise KeyboardInterrupt  # stands for a kill in the middle of extraction

    with monkeypatch.context() as patch:
        patch.setattr(download, "safe_extract", killed)
        with pytest.raises(KeyboardInterrupt):
            download.fetch(train, str(cache), url, progress=False)
    assert sorted(os.listdir(cache)) == ["rps.zip"]  # no half folder, no staging left
    folder = download.fetch(train, str(cache), url, progress=False)
    assert sorted(os.listdir(os.path.join(folder, "rock"))) == ["rock01-000.png"]
    assert os.path.isfile(os.path.join(folder, "paper", "p.png"))


@pytest.mark.parametrize("member", ["../evil.png", "rps/../../evil.png", "/tmp/evil.png"])
def test_zip_slip_is_refused(tmp_path, member):
    data = make_zip("", {"rps/rock/ok.png": b"x", member: b"evil"})
    zip_path = tmp_path / "bad.zip"
    zip_path.write_bytes(data)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(download.DownloadError, match="outside"):
        download.safe_extract(str(zip_path), str(dest))
    assert not (tmp_path / "evil.png").exists()
    assert not os.listdir(dest)


def test_not_a_zip_is_reported(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(download.DownloadError, match="not a valid zip"):
        download.safe_extract(str(path), str(tmp_path))


def test_progress_is_shown_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = download._Progress("rps.zip", 2 * 2**20, stream)
    bar.update(2**20)
    bar.update(2 * 2**20)
    assert "rps.zip: 1.0/2.0 MiB (50%" in stream.getvalue()
    assert stream.getvalue().endswith("\n")


class _Slow(_Quiet):
    """Sends files 1 KiB at a time with pauses, so that two downloads overlap."""

    def copyfile(self, source, outputfile):
        for chunk in iter(lambda: source.read(1024), b""):
            outputfile.write(chunk)
            time.sleep(0.01)


FETCH = """
import sys
from rps_tfdata.trainer import download
remote = download.RemoteZip(sys.argv[3], int(sys.argv[4]), sys.argv[5], "rps")
print(download.fetch(remote, sys.argv[1], sys.argv[2], progress=False))
"""


@pytest.mark.slow
def test_two_runs_fetching_at_once_on_an_empty_cache_both_succeed(tmp_path):
    root = tmp_path / "www" / "mirror"
    root.mkdir(parents=True)
    files = {f"rock/r{k}.png": os.urandom(2000) for k in range(20)}
    data = make_zip("rps", files)
    (root / "rps.zip").write_bytes(data)
    remote = pinned("rps.zip", "rps", data)
    handler = functools.partial(_Slow, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/mirror/"
    cache = str(tmp_path / "cache")
    args = [cache, url, remote.name, str(remote.size), remote.sha256]
    try:
        runs = [launch(["-c", FETCH, *args]) for _ in range(2)]
        with stopped_at_exit(*runs):
            outputs = [run.communicate(timeout=120)[0] for run in runs]
    finally:
        server.shutdown()
        server.server_close()
    assert [run.returncode for run in runs] == [0, 0]
    folder = os.path.join(cache, "rps")
    assert all(out.strip() == folder for out in outputs)
    for relative, content in files.items():
        with open(os.path.join(folder, relative), "rb") as f:
            assert f.read() == content
    assert sorted(os.listdir(cache)) == ["rps", "rps.zip"]  # no temporary file left
    assert download.sha256_of(os.path.join(cache, "rps.zip")) == remote.sha256


@pytest.fixture
def big_mirror(tmp_path):
    """Serves a 600 KB zip of incompressible files; yields (base_url, remote, files,
    requests): `requests` counts the server's answers."""
    root = tmp_path / "www" / "mirror"
    root.mkdir(parents=True)
    files = {f"rock/r{k}.png": os.urandom(20_000) for k in range(30)}
    data = make_zip("rps", files)
    (root / "rps.zip").write_bytes(data)
    requests = []

    class Counting(_Quiet):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    handler = functools.partial(Counting, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    try:
        yield (
            f"http://127.0.0.1:{server.server_address[1]}/mirror/",
            pinned("rps.zip", "rps", data),
            files,
            requests,
        )
    finally:
        server.shutdown()
        server.server_close()


def test_a_full_disk_under_the_download_is_reported_as_local(tmp_path, big_mirror):
    """A real full disk (a 0.3 MB tmpfs) under a 0.6 MB download: the write fails with
    ENOSPC, the message says it is this machine's disk, and no partial file is left."""
    url, remote, _, _ = big_mirror
    with sandbox.small_disk(str(tmp_path / "cache"), 0.3) as cache:
        with pytest.raises(download.DownloadError) as raised:
            download.fetch(remote, cache, url, progress=False)
        assert "No space left on device" in str(raised.value)
        assert "This is a local problem (disk full? permissions?)" in str(raised.value)
        assert "Check the network" not in str(raised.value)
        assert os.listdir(cache) == []


def test_a_disk_that_fills_while_extracting_keeps_the_download(tmp_path, big_mirror):
    """The zip fits (1 MB tmpfs) but its extraction does not: one line names the zip and
    the folder, no half-extracted folder is left, and once there is room the verified
    zip is extracted without downloading it again."""
    url, remote, files, requests = big_mirror
    with sandbox.small_disk(str(tmp_path / "cache"), 1) as cache:
        with pytest.raises(download.DownloadError) as raised:
            download.fetch(remote, cache, url, progress=False)
        message = str(raised.value)
        assert f"could not extract {cache}/rps.zip into {cache}/rps: No space" in message
        assert "This is a local problem" in message and "\n" not in message
        assert os.listdir(cache) == ["rps.zip"]
        sandbox.resize_disk(cache, 4)
        folder = download.fetch(remote, cache, url, progress=False)
        assert len(requests) == 1
        for relative, content in files.items():
            with open(os.path.join(folder, relative), "rb") as f:
                assert f.read() == content


def test_a_download_folder_that_cannot_exist_is_named(tmp_path, mirror):
    url, train, _, _ = mirror
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"--download_dir=.*a_file/cache cannot be written"):
        download.fetch(train, str(blocker / "cache"), url, progress=False)


def test_a_folder_source_lists_each_folder_once_per_start(
    synthetic_dir, held_out_dir, tmp_path, monkeypatch
):
    """The fingerprint and the split come from one listing: on a bucket each page of a
    listing is a request, paid once per start."""
    from collections import Counter

    from rps_tfdata.infra import fs
    from rps_tfdata.trainer import datasets, plan
    from rps_tfdata.trainer.distribution import Worker

    from .helpers import small_run

    folders = [
        os.path.join(d, c)
        for d in (synthetic_dir, held_out_dir)
        for c in ("paper", "rock", "scissors")
    ]
    calls = Counter()
    real_walk, real_listdir = fs.walk, fs.listdir

    def walk(path, follow_links=False):
        calls["walk", path] += 1
        yield from real_walk(path, follow_links)

    def listdir(path):
        calls["listdir", path] += 1
        return real_listdir(path)

    monkeypatch.setattr(fs, "walk", walk)
    monkeypatch.setattr(fs, "listdir", listdir)
    config = small_run(synthetic_dir, tmp_path / "run", test_dir=held_out_dir)
    source = datasets.open_source(config)
    source.fingerprint()
    source.image_counts(Worker())
    source.load(Worker(), plan.input_options(config))
    once = {("walk", f): 1 for f in folders}
    once.update({("listdir", synthetic_dir): 1, ("listdir", held_out_dir): 1})
    assert dict(calls) == once
