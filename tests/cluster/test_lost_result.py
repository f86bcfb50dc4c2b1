"""A finished task whose only worker dies before its result is fetched: the fetch keeps asking the
driver's watch instead of waiting for ever, and gets the result once a worker has computed it again."""

from __future__ import annotations

import operator
import os
import signal
import threading
import time

from distributed import wait

from triage.cluster.reconnect import settle


def test_a_result_lost_with_its_only_worker_is_fetched_again_and_watched_meanwhile(dask_procs) -> None:
    dask_procs.start_scheduler()
    nanny = dask_procs.start_worker("a")
    asked: list[float] = []
    got: dict = {}
    with dask_procs.client() as client:
        fut = client.submit(operator.add, 40, 2, pure=False)
        wait([fut], timeout=60)
        assert fut.status == "finished"                   # done, its result held by worker a alone
        os.killpg(nanny.pid, signal.SIGKILL)              # worker and nanny gone before the driver fetched it
        nanny.wait(timeout=30)
        deadline = time.monotonic() + 30
        while client.nthreads() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.nthreads() == {}
        fetch = threading.Thread(target=lambda: got.update(s=settle(client, fut, waiting=lambda: asked.append(
            time.monotonic()), every=0.3)), daemon=True)
        fetch.start()
        time.sleep(2.5)
        assert fetch.is_alive() and len(asked) >= 3       # no worker: still waiting, and the watch is asked
        dask_procs.start_worker("b")                      # a worker joins: the task runs again
        fetch.join(60)
        assert not fetch.is_alive()
        assert got["s"].value == 42 and got["s"].error is None


def test_a_worker_killed_during_the_version_probe_is_gone_not_mixed(dask_procs) -> None:
    """The probe's answer for a worker killed while it was asked is a closed connection; once the
    scheduler has dropped that worker it is simply not part of the cluster any more, and the run goes
    on with the others (before, `triage run` refused with 'mixed cluster' when a fault landed then)."""
    from distributed.comm.core import CommClosedError

    from triage.cluster.versions import cluster_versions, mixed_workers

    dask_procs.start_scheduler()
    nanny = dask_procs.start_worker("a")
    dask_procs.start_worker("b")
    with dask_procs.client() as client:
        addrs = {w: dask_procs.workers()[w]["address"] for w in ("a", "b")}
        live = client.run(lambda: __import__("triage.cluster.versions", fromlist=["x"]).worker_versions(),
                          workers=[addrs["b"]])
        os.killpg(nanny.pid, signal.SIGKILL)
        nanny.wait(timeout=30)
        got = {addrs["a"]: CommClosedError("in <TCP (closed) Scheduler Broadcast>: Stream is closed"), **live}
        versions = cluster_versions(client, got)
        assert list(versions) == [addrs["b"]]
        assert mixed_workers(client, versions) == {}
