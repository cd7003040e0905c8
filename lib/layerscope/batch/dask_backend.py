"""The Dask backend: the same runs as tasks on ``dask.distributed``.

By default a ``LocalCluster`` of ``workers`` single-threaded worker processes; with a scheduler
address, an existing cluster (e.g. one started by ``dask_jobqueue.SLURMCluster``/``PBSCluster``
or ``dask scheduler`` + ``dask worker``); or a ``Client`` given by the caller. Every task calls
``runner.execute``, which runs the notebook in a child process with torch threads set so that
worker threads x torch threads <= the cores of that worker's host.

Nothing is lost: a notebook that raises gives a ``failed`` marker from the task itself; a worker
that dies while running a task has the task rescheduled by the scheduler on another worker (up
to ``distributed.scheduler.allowed-failures`` times, default 3), after which its
``KilledWorker`` error is recorded as the run's failure here. Runs are handed to the scheduler
no faster than threads free up, so a death is not blamed on runs merely queued behind the one
that killed the worker. Workers must see the sweep folder
and the layerscope home (``LAYERSCOPE_HOME``, the cache) at the same paths: a shared
filesystem. Sharing the cache is safe: entries are content-addressed and written by atomic
rename, so two workers computing the same entry both write a complete copy and one wins; a
fine-tuning run, built in place, and a sweep run are locked (``cache.locked``, ``fcntl.flock``,
which needs a filesystem whose locks all hosts see, e.g. NFSv4 or Lustre with flock): the
second worker waits and reuses the result.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from . import runner

RETRIES = 1  # for an exception in execute() itself (a disk error), not the notebook's


def threads_by_worker(client) -> dict[str, int]:
    """Worker address -> torch threads per run: the host's cores // all worker threads on it."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(runner.available_cores)
    per_host: dict[str, int] = {}
    for w in info.values():
        per_host[w["host"]] = per_host.get(w["host"], 0) + w["nthreads"]
    return {addr: max(1, cores.get(addr, 1) // max(1, per_host[w["host"]]))
            for addr, w in info.items()}


def run_task(run: runner.Run, threads: dict[str, int], timeout: float | None) -> dict:
    """The Dask task: ``runner.execute`` with this worker's thread count (a worker that joined
    after the sweep started divides its host's cores by its own threads)."""
    from distributed import get_worker

    w = get_worker()
    n = threads.get(w.address) or runner.threads_per_run(w.state.nthreads)
    return runner.execute(run, n, timeout=timeout)


def local_cluster(workers: int):
    """``workers`` single-threaded worker processes here, no dashboard (no port to clash)."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=None, silence_logs=logging.ERROR)


def run_dask(runs: list[runner.Run], *, workers: int, on_done: Callable[[dict], None],
             scheduler: str | None = None, client=None, timeout: float | None = None) -> None:
    """Run ``runs`` on Dask and call ``on_done(marker)`` for each as it ends."""
    import dask
    from distributed import Client, as_completed
    from distributed.scheduler import KilledWorker

    owned = []
    if client is None:
        if scheduler:
            try:
                client = Client(scheduler)
            except (OSError, TimeoutError) as e:  # refused, unknown host, timed out
                from ..errors import ConfigError

                raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r} ({e}); "
                                  "start it (`dask scheduler`) or check the address, or run "
                                  "without --scheduler (a local cluster)") from e
            owned = [client]
        else:
            cluster = local_cluster(workers)
            client = Client(cluster)
            owned = [client, cluster]
    try:
        threads = threads_by_worker(client)
        tag = uuid.uuid4().hex[:6]
        pending, futures, done = list(runs), {}, as_completed()

        def submit_more() -> None:
            # Only as many runs in flight as the cluster has threads: the scheduler blames a
            # worker's death on every task assigned to it, queued or running, so runs handed
            # out ahead would be "killed" (after allowed-failures deaths) without having run.
            while pending and len(futures) < max(1, sum(client.nthreads().values())):
                r = pending.pop(0)
                f = client.submit(run_task, r, threads, timeout, pure=False, retries=RETRIES,
                                  key=f"layerscope-{r.notebook}-{r.key}-{tag}")
                futures[f] = r
                done.add(f)

        submit_more()
        try:
            for f in done:
                run = futures.pop(f)
                try:
                    out = f.result()
                except KilledWorker as e:
                    allowed = dask.config.get("distributed.scheduler.allowed-failures")
                    out = runner.record_failure(
                        run, f"KilledWorker: the Dask worker running it died, {allowed + 1} "
                             f"times on different workers ({e})")
                except Exception as e:  # any other task error: recorded, the sweep goes on
                    out = runner.record_failure(run, f"{type(e).__name__}: {e}")
                on_done(out)
                submit_more()
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        for x in owned:
            x.close()
