"""The timing loop of the side-by-side benchmark scripts: untimed warm-up calls, then the median
wall time of the timed ones (time.perf_counter)."""
import statistics
import time


def median_seconds(call, iters, warmup=0):
    """Calls `call` `warmup` times untimed, then `iters` times timed.

    Returns (the median seconds of a timed call, the last call's result)."""
    for _ in range(warmup):
        call()
    times, result = [], None
    for _ in range(iters):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
