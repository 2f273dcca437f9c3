"""The real things the slow tests make, and always remove: network namespaces (hosts with
a network of their own, and a GCS server reached at Google's own host names), small
tmpfs disks, cgroup memory limits. Each needs root (as the suite has here and in CI);
where it cannot be made, the test skips with one line saying why."""

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from typing import Iterator, NamedTuple, Optional, Sequence

import pytest

from .helpers import ROOT, stopped_at_exit

# The hosts TensorFlow's GCS client talks to (its JSON and upload APIs, and the XML host).
GCS_HOSTS = ("storage.googleapis.com", "www.googleapis.com", "oauth2.googleapis.com")
BUCKET = "rps-test-bucket"
# TensorFlow's own knobs for its GCS client's retries (its defaults: 10 retries, backoff
# from 1 s to 32 s): shorter here, so that a bucket that went away is given up on soon.
GCS_RETRIES = {
    "GCS_RETRY_CONFIG_MAX_RETRIES": "3",
    "GCS_RETRY_CONFIG_INIT_DELAY_TIME_US": "100000",
    "GCS_RETRY_CONFIG_MAX_DELAY_TIME_US": "400000",
}


def _need(what: str, *commands: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"needs root to make {what}")
    for command in commands:
        if shutil.which(command) is None:
            pytest.skip(f"needs `{command}` to make {what}")


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def _name(kind: str) -> str:
    return f"rps-{kind}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def namespace(hosts: Sequence[tuple[str, str]] = ()) -> Iterator[str]:
    """A new network namespace with its loopback up and, for each (address, name) in
    `hosts`, a line of its own hosts file; removed at the end."""
    _need("a network namespace", "ip")
    name = _name("ns")
    _run("ip", "netns", "add", name)
    folder = os.path.join("/etc/netns", name)
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        if hosts:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "hosts"), "w") as f:
                f.write("127.0.0.1 localhost\n")
                f.writelines(f"{address} {host}\n" for address, host in hosts)
        yield name
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def in_namespace(name: str) -> list[str]:
    """The command prefix that runs a program inside the namespace `name`."""
    return ["ip", "netns", "exec", name]


def cut_loopback(name: str, *, up: bool = False) -> None:
    """Takes the namespace's loopback down (or back up): its servers stop answering
    there, and a request to them times out instead of being refused."""
    _run("ip", "-n", name, "link", "set", "lo", "up" if up else "down")


class Link(NamedTuple):
    """One host's cable to the switch: cut with `set_link(link, up=False)`."""

    host: str  # the host's namespace
    address: str  # its address on the switch's network
    device: str  # its end of the cable, inside `host`


def set_link(link: Link, *, up: bool) -> None:
    _run("ip", "-n", link.host, "link", "set", link.device, "up" if up else "down")


@contextlib.contextmanager
def network(count: int) -> Iterator[list[Link]]:
    """`count` hosts, each a namespace with an address on one switch (a bridge in a
    namespace of its own) through a veth pair; everything removed at the end."""
    with contextlib.ExitStack() as stack:
        switch = stack.enter_context(namespace())
        _run("ip", "-n", switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", switch, "link", "set", "br0", "up")
        links = []
        for k in range(count):
            host = stack.enter_context(namespace())
            device, port = f"eth{k}", f"port{k}"
            _run(
                "ip",
                "link",
                "add",
                device,
                "netns",
                host,
                "type",
                "veth",
                "peer",
                port,
                "netns",
                switch,
            )
            _run("ip", "-n", switch, "link", "set", port, "master", "br0")
            _run("ip", "-n", switch, "link", "set", port, "up")
            address = f"10.77.0.{k + 1}"
            _run("ip", "-n", host, "addr", "add", f"{address}/24", "dev", device)
            _run("ip", "-n", host, "link", "set", device, "up")
            links.append(Link(host, address, device))
        yield links


@contextlib.contextmanager
def small_disk(folder: str, megabytes: float) -> Iterator[str]:
    """A tmpfs of `megabytes` mounted on `folder` (made if needed); unmounted at the end."""
    _need("a tmpfs mount", "mount", "umount")
    os.makedirs(folder, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={int(megabytes * 1024)}k", "tmpfs", folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], capture_output=True)


def resize_disk(folder: str, megabytes: float) -> None:
    """The tmpfs of `small_disk` on `folder` made `megabytes` large, its files kept."""
    _run("mount", "-o", f"remount,size={int(megabytes * 1024)}k", folder)


@contextlib.contextmanager
def memory_limit(megabytes: int) -> Iterator[str]:
    """A cgroup (v1 `memory` controller) limited to `megabytes`: a process joins it by
    writing its pid to `cgroup.procs` (`join_command`); removed at the end."""
    _need("a memory cgroup")
    root = "/sys/fs/cgroup/memory"
    if not os.path.isfile(os.path.join(root, "memory.limit_in_bytes")):
        pytest.skip("needs cgroup v1's memory controller at /sys/fs/cgroup/memory")
    folder = os.path.join(root, _name("mem"))
    os.mkdir(folder)
    try:
        with open(os.path.join(folder, "memory.limit_in_bytes"), "w") as f:
            f.write(str(megabytes << 20))
        yield folder
    finally:
        for _ in range(50):  # its processes are gone once the test stopped them
            try:
                os.rmdir(folder)
                break
            except OSError:
                time.sleep(0.1)


def join_command(cgroup: str) -> list[str]:
    """The command prefix that runs a program inside the cgroup `cgroup`."""
    procs = os.path.join(cgroup, "cgroup.procs")
    return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh"]


class Gcs(NamedTuple):
    """A GCS server inside a namespace of its own, for TensorFlow's real client."""

    namespace: str
    env: dict  # what a client process needs (its CA, a token, no metadata server)
    log: str  # one line per request the server has answered

    def lines(self) -> list[str]:
        """The requests answered so far, in order."""
        with open(self.log) as f:
            return f.read().splitlines()

    def requests(self) -> int:
        return len(self.lines())


def _certificate(folder: str) -> tuple[str, str]:
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    names = ",".join(f"DNS:{host}" for host in GCS_HOSTS)
    _run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", key, "-out", cert, "-subj", f"/CN={GCS_HOSTS[0]}",
        "-addext", f"subjectAltName={names}",
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def gcs(folder: str, *, env: Optional[dict] = None) -> Iterator[Gcs]:
    """gcp-storage-emulator, adapted for TensorFlow's client (`tests/gcs_emulator.py`),
    on 127.0.0.1:443 of a new namespace whose hosts file sends Google's storage hosts
    there, holding the bucket BUCKET; nothing a client in the namespace sends leaves it."""
    _need("a network namespace", "ip", "openssl")
    try:
        import gcp_storage_emulator  # noqa: F401
    except ImportError:
        pytest.skip("needs gcp-storage-emulator (the test extra)")
    cert, key = _certificate(folder)
    log = os.path.join(folder, "requests.log")
    open(log, "w").close()
    with namespace([("127.0.0.1", host) for host in GCS_HOSTS]) as name:
        script = os.path.join(ROOT, "tests", "gcs_emulator.py")
        server = subprocess.Popen(
            [*in_namespace(name), sys.executable, script, cert, key, "443", log, BUCKET],
            stdout=subprocess.PIPE,
            text=True,
        )
        with stopped_at_exit(server):
            assert server.stdout.readline().strip() == "ready"
            client = {"CURL_CA_BUNDLE": cert, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test"}
            client |= {"NO_GCE_CHECK": "true", **GCS_RETRIES, **(env or {})}
            yield Gcs(name, client, log)
