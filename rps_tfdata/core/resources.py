"""What the process uses, for the run's history and the benchmarks' headers alike."""

import resource


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (Linux), in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB. Linux's VmHWM, not
    `getrusage`'s ru_maxrss: the kernel updates the latter lazily, so it can lag the
    current resident size (seen: a test reading a peak below the RSS read before it)."""
    try:
        return _status_mb("VmHWM")
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux: /proc/self/status)."""
    return _status_mb("VmRSS")
