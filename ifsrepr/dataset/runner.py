"""Where batches run: in this process, in local worker processes, or on a Dask cluster.

All three yield results as batches finish, so the caller can record each one
(and update the progress bar) straight away. Workers write their own part
files: only small reports travel back, which is what lets a Dask cluster
process a 100,000-cube survey without shipping the arrays through the
scheduler (the workers need the inputs and the output directory on a shared
file system, as they need the inputs anyway).
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from .errors import DatasetError

__all__ = ["run_tasks"]

T = TypeVar("T")
R = TypeVar("R")


def run_tasks(
    function: Callable[[T], R],
    tasks: Sequence[T],
    *,
    jobs: int = 1,
    scheduler: str | Any | None = None,
) -> Iterator[R]:
    """Run ``function`` on every task and yield the results in completion order.

    Parameters
    ----------
    function : callable
        A module-level function (it is pickled by name for other processes).
    tasks : sequence
        Picklable arguments, one call each.
    jobs : int
        Local worker processes; 1 runs everything in this process.
    scheduler : str or distributed.Client, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``), or a
        connected client; overrides ``jobs``.

    Yields
    ------
    object
        ``function(task)`` for each task, as they finish. An exception in a
        task propagates (after cancelling what has not started).
    """
    if scheduler is not None:
        yield from _run_dask(function, tasks, scheduler)
    elif jobs > 1 and len(tasks) > 1:
        yield from _run_processes(function, tasks, jobs)
    else:
        for task in tasks:
            yield function(task)


def _start_method() -> multiprocessing.context.BaseContext:
    # forkserver: workers start from a clean process, so neither threads of
    # this one (tqdm's monitor, torch's pools) nor its open HDF5 handles are
    # inherited; spawn where forkserver does not exist.
    if sys.platform == "win32":
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Import the worker code once in the server; each worker forks ready to go.
    context.set_forkserver_preload(["ifsrepr.dataset.worker"])
    return context


def _run_processes(function: Callable[[T], R], tasks: Sequence[T], jobs: int) -> Iterator[R]:
    with ProcessPoolExecutor(max_workers=jobs, mp_context=_start_method()) as pool:
        # Keep a bounded number of tasks in flight instead of submitting all at
        # once: a survey has tens of thousands of batches.
        pending = iter(tasks)
        running = set()
        try:
            for task in pending:
                running.add(pool.submit(function, task))
                if len(running) >= 2 * jobs:
                    break
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    nxt = next(pending, None)
                    if nxt is not None:
                        running.add(pool.submit(function, nxt))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_dask(function: Callable[[T], R], tasks: Sequence[T], scheduler: Any) -> Iterator[R]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise DatasetError(
            "--scheduler needs Dask distributed: pip install 'ifsrepr[dask]'"
        ) from None
    own_client = isinstance(scheduler, str)
    try:
        client = Client(scheduler, timeout="30s") if own_client else scheduler
    except OSError as exc:
        raise DatasetError(f"cannot connect to the Dask scheduler {scheduler}: {exc}") from None
    try:
        # pure=False: the same batch run twice (a rerun) must really run again.
        futures = client.map(function, list(tasks), pure=False)
        try:
            for future in as_completed(futures):
                yield future.result()
                future.release()
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if own_client:
            client.close()
