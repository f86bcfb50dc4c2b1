"""Find compute: start an embedded LocalCluster, or connect to a running ``dask scheduler``.

The control plane passes every setting in; nothing here reads triage's config,
so the same function serves the CLI, the tests and, later, the dispatcher.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from triage.rules.errors import ClusterError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | int = "auto",
) -> Iterator["distributed.Client"]:  # noqa: F821
    """A ``distributed.Client``: to ``scheduler`` if given, else to a new LocalCluster of processes.

    Worker processes (not threads): TSK, libewf and libmagic handles are per
    process, and hashing plus decoding scale with cores, not with the GIL.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"{scheduler}: no dask scheduler reachable ({exc})") from exc
        try:
            yield client
        finally:
            client.close()
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ClusterError(f"--workers must be at least 1, got {n}")
    try:
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address="127.0.0.1:0",  # its HTTP server always starts; a free loopback port, never 8787 clashes
            silence_logs=logging.CRITICAL,  # expected per-file errors are results, not log noise
        )
    except (OSError, RuntimeError) as exc:
        raise ClusterError(f"could not start a local Dask cluster: {exc}") from exc
    client = Client(cluster)
    log.debug("local cluster %s with %d workers", cluster.scheduler_address, n)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
