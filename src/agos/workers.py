"""Worker processes of one run. Spawned, never forked (torch's and numba's thread pools do not
survive a fork); each quiet (no progress bars; Ctrl-C is the parent's to handle, in one line), on
one core's threads, and at a lower priority than the process that started them: that process may be
running torch on all the cores meanwhile (reproduce captures the next model while its workers
analyse the last), and torch's parallel regions wait for their slowest thread — at equal priority a
worker holding a core made a 2-second capture take 20. The workers take what the captures leave.
On a failure or Ctrl-C every worker is stopped at once, not after the task it is running."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

WORKER_NICENESS = 10


def start_worker() -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["AGOS_PROGRESS"] = "0"
    torch.set_num_threads(1)
    with contextlib.suppress(OSError):  # a system that refuses it: the same figures, at equal priority
        os.nice(WORKER_NICENESS)


def in_worker() -> bool:
    """Whether this process is itself a worker (of agos's pools or Dask's): it starts no pool of
    its own, so that workers never nest."""
    return multiprocessing.parent_process() is not None


def default_workers(cap: int = 2) -> int:
    return 1 if in_worker() else max(1, min(cap, os.cpu_count() or 1))


@contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker)
    try:
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
