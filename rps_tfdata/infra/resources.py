"""What the process uses and may still use: for the run's history, the benchmarks'
headers, and the choice of the image cache."""

import os
import resource
from typing import NamedTuple, Optional


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (Linux), in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB: the larger of Linux's VmHWM
    and the resident size now. The kernel updates both VmHWM and `getrusage`'s
    ru_maxrss lazily, so either can lag the resident size (seen: a peak 0.1 MiB below
    the RSS read before it, with VmHWM)."""
    try:
        return max(_status_mb("VmHWM"), _status_mb("VmRSS"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux: /proc/self/status)."""
    return _status_mb("VmRSS")


class MemoryRoom(NamedTuple):
    """How much more memory this process may use, and what bounds it."""

    mb: float
    bound: str  # "MemAvailable" or "the memory limit of cgroup /path (L MB, U MB in use)"


def memory_room() -> MemoryRoom:
    """The least of the machine's available memory and the room left under each memory
    cgroup limit above this process (v1 or v2; a container's limit is one): the kernel
    kills the process, with no message, when it goes past any of them. Page cache a
    cgroup can drop (its inactive files) is not counted as in use."""
    rooms = [_meminfo_room(), *_cgroup_rooms()]
    return min((room for room in rooms if room is not None), key=lambda room: room.mb)


def _meminfo_room() -> Optional[MemoryRoom]:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return MemoryRoom(int(fields["MemAvailable"].split()[0]) / 1024, "MemAvailable")
    except (OSError, KeyError, ValueError):
        return None


def _cgroup_rooms() -> list[MemoryRoom]:
    """The room under the limit of this process's memory cgroup and of each above it."""
    rooms = []
    for folder, limit_file, usage_file, inactive in _memory_cgroups():
        try:
            limit = _read(folder, limit_file)
            used = _read(folder, usage_file) - _stat(folder, inactive)
        except (OSError, ValueError):
            continue
        if limit is None or limit >= 1 << 60:
            continue  # no limit here
        rooms.append(
            MemoryRoom(
                (limit - used) / 2**20,
                f"the memory limit of cgroup {folder} ({limit / 2**20:.0f} MB, "
                f"{used / 2**20:.0f} MB in use)",
            )
        )
    return rooms


def _memory_cgroups() -> list[tuple[str, str, str, str]]:
    """(folder, limit file, usage file, inactive-file stat) of this process's memory
    cgroup and its ancestors, as /proc/self/cgroup names them (folders not mounted here,
    as in some containers, left out)."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return []
    found = []
    for _, controllers, path in lines:
        if "memory" in controllers.split(","):
            base, files = (
                "/sys/fs/cgroup/memory",
                ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
            )
        elif controllers == "" and os.path.isfile("/sys/fs/cgroup/cgroup.controllers"):
            base, files = "/sys/fs/cgroup", ("memory.max", "memory.current", "inactive_file")
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):
            folder = os.path.join(base, *parts[:depth])
            if os.path.isfile(os.path.join(folder, files[0])):
                found.append((folder, *files))
    return found


def _read(folder: str, name: str) -> Optional[int]:
    with open(os.path.join(folder, name)) as f:
        text = f.read().strip()
    return None if text == "max" else int(text)


def _stat(folder: str, key: str) -> int:
    with open(os.path.join(folder, "memory.stat")) as f:
        return next((int(line.split()[1]) for line in f if line.split()[0] == key), 0)
