"""The timing every bench script shares: median wall time of a function after warm-up calls."""
import statistics
import time


def median_seconds(fn, runs, warmup=1):
    """Median of `runs` timed calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
