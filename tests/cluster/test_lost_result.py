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


def test_a_result_slower_to_fetch_than_the_watch_step_is_fetched_and_the_next_ones_too(dask_procs) -> None:
    """Only the wait for a fetch times out, never the fetch: before, a result whose fetch took longer
    than the watch's step (a big batch, a busy network) was cancelled mid-fetch, and that left the
    client's shared gather cancelled: the result and every later one on that client settled as an
    UnboundLocalError, i.e. tasks that ran well recorded as failed."""
    dask_procs.start_scheduler()
    dask_procs.start_worker("a")
    asked: list[float] = []
    with dask_procs.client() as client:
        big = client.submit(bytes, 96 << 20, pure=False)       # ~100 MB: its fetch takes far longer than 0.5 ms
        wait([big], timeout=60)
        settled = settle(client, big, waiting=lambda: asked.append(time.monotonic()), every=0.0005)
        assert settled.error is None and settled.value == bytes(96 << 20)
        assert asked                                            # the wait did time out while the fetch went on
        small = [client.submit(operator.add, i, 1, pure=False) for i in range(30)]
        wait(small, timeout=60)
        got = [settle(client, f, waiting=lambda: None, every=0.0005) for f in small]
        assert [(s.value, s.error) for s in got] == [(i + 1, None) for i in range(30)]
