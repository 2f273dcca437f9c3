"""What the process uses, for the run's history and the benchmarks' headers alike."""

import resource


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
