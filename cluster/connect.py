"""Find compute: start an embedded LocalCluster, or connect to a running ``dask scheduler``.

The control plane passes every setting in; nothing here reads triage's config,
so the same function serves the CLI, the tests and the dispatcher.

A connection to a running scheduler is checked before anything is submitted: a
worker importing another evidence-triage, pytsk3 or libewf than this client
(:mod:`triage.cluster.versions`) refuses the whole connection with one line,
because a job must never produce a table that depends on which worker ran it; a
worker that joins later with other versions is refused by :mod:`triage.cluster.guard`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from triage.rules.errors import ClusterError

log = logging.getLogger(__name__)


def parse_workers(spec: str | int | None) -> tuple[int, int] | int | None:
    """``"4"`` → 4 fixed workers; ``"1:8"`` → (1, 8) adaptive; ``None`` stays None (one per core).

    Raises ClusterError (one line) on anything else, so ``--workers`` and the config say the same.
    """
    if spec is None or isinstance(spec, int):
        return spec
    text = str(spec).strip()
    try:
        if ":" in text:
            lo, hi = (int(x) for x in text.split(":", 1))
            if lo < 0 or hi < max(lo, 1):
                raise ValueError
            return lo, hi
        return int(text)
    except ValueError:
        raise ClusterError(f"workers {spec!r}: expected N or MIN:MAX with 0 <= MIN <= MAX, MAX >= 1") from None


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    workers: int | tuple[int, int] | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | int = "auto",
    security: Any = None,
    check_versions: bool = True,
    adapt_interval: str = "1s",
    adapt_wait_count: int = 3,
) -> Iterator["distributed.Client"]:  # noqa: F821
    """A ``distributed.Client``: to ``scheduler`` if given, else to a new LocalCluster of processes.

    Worker processes (not threads): TSK, libewf and libmagic handles are per
    process, and hashing plus decoding scale with cores, not with the GIL.
    ``workers=(MIN, MAX)`` makes the LocalCluster adaptive: it grows while tasks
    wait and releases workers idle for ``adapt_wait_count`` x ``adapt_interval``.
    ``security``: a ``distributed.security.Security`` (see :mod:`triage.cluster.security`) for a
    scheduler address; an embedded LocalCluster listens on loopback only and does not use it.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        if scheduler.startswith("tls://") and security is None:
            raise ClusterError(f"{scheduler}: a tls:// scheduler needs certificates "
                               "(config triage.cluster.tls.*, see 'triage cluster certs --help')")
        if security is not None and getattr(security, "require_encryption", False) \
                and not scheduler.startswith("tls://"):
            raise ClusterError(f"{scheduler}: TLS is configured, refusing to talk to a plain (non-tls://) address")
        try:
            client = Client(scheduler, timeout="10s", security=security)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"{scheduler}: no dask scheduler reachable ({' '.join(str(exc).split())})") from exc
        except (ValueError, RuntimeError) as exc:  # e.g. a TLS handshake refused by a misconfigured peer
            raise ClusterError(f"{scheduler}: {' '.join(str(exc).split())}") from exc
        try:
            if check_versions:
                from triage.cluster.guard import register
                from triage.cluster.versions import check_cluster, worker_versions

                check_cluster(client)
                register(client, worker_versions())  # and every worker that joins later (triage.cluster.guard)
            yield client
        finally:
            client.close()
        return
    adaptive = workers if isinstance(workers, tuple) else None
    n = adaptive[0] if adaptive else (workers if workers is not None else (os.cpu_count() or 1))
    if n < (0 if adaptive else 1):
        raise ClusterError(f"--workers must be at least 1, got {n}")
    try:
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address="127.0.0.1:0",  # its HTTP server always starts; a free loopback port, never 8787 clashes
            preload=["triage.cluster.preload"],  # pyarrow must not import pandas in each worker (see there)
            silence_logs=logging.CRITICAL,  # expected per-file errors are results, not log noise
        )
    except (OSError, RuntimeError) as exc:
        raise ClusterError(f"could not start a local Dask cluster: {exc}") from exc
    if adaptive:
        cluster.adapt(minimum=adaptive[0], maximum=adaptive[1], interval=adapt_interval, wait_count=adapt_wait_count)
    client = Client(cluster)
    log.debug("local cluster %s with %d workers%s", cluster.scheduler_address, n,
              f" (adaptive up to {adaptive[1]})" if adaptive else "")
    try:
        yield client
    finally:
        client.close()
        cluster.close()
