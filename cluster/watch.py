"""Noticing a cluster with no worker while tasks wait on it, instead of waiting forever.

Why this exists: Dask never fails a task because no worker is there to run it; the
task waits (state ``no-worker``/``queued``) until one joins. A ``triage run`` whose
workers are all gone therefore hung with no word. How a LocalCluster loses every
worker for good (the cause of the ten-job churn test's hang, reproduced in
``tests/cluster/test_no_workers.py``): a worker that cannot *read* a task message
from the scheduler (``Failed to deserialize``: the task's function lives in a module
that worker cannot import, e.g. because the source tree changed under a running
job) fails in ``Worker.handle_scheduler``, and distributed then closes the worker
*and asks its nanny to close too* (``Worker.close(nanny=True)``), so nothing restarts
it. The scheduler hands the task to the next worker, which dies the same way. A
worker killed with its nanny (a lost machine, an OOM kill of both) ends the same.

:class:`WorkerWatch` is asked by the driver whenever a wait for results times out, and
told (:meth:`WorkerWatch.heard`) when results come back after it saw none.
After ``limit`` seconds with tasks out and no worker it either raises
:class:`NoWorkersError` (``triage run``: nothing will bring a local cluster's workers
back, and a one-shot run must end with a reason) or, given a ``record`` callback
(``triage serve``: external workers may come back), reports ``workers-none`` once,
keeps waiting, and reports ``workers-back`` with the outage's length when one joins.
Nothing here knows about jobs, the audit log or the dashboard.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from triage.cluster.guard import refusals
from triage.rules.errors import ClusterError

log = logging.getLogger(__name__)

Record = Callable[[str, dict[str, Any]], None]


class NoWorkersError(ClusterError):
    """Tasks are waiting and the cluster has had no worker for longer than ``cluster.no-workers-seconds``."""


def lost_workers(client: Any) -> list[dict[str, Any]]:
    """The scheduler's ``remove-worker`` events that were not asked for (lost, not retired), oldest first."""
    try:
        events = client.get_events("all")
    except Exception:  # noqa: BLE001 - a reason is a courtesy; the error itself must still be raised
        log.debug("cannot read the scheduler's events", exc_info=True)
        return []
    return [msg for _, msg in events if isinstance(msg, dict) and msg.get("action") == "remove-worker"
            and not msg.get("expected")]


def _task_kind(key: str) -> str:
    from dask.utils import key_split

    return key_split(key)


def why_no_workers(client: Any) -> str:
    """One clause on how the workers went: which were lost running what, and whether a local nanny gave up."""
    lost = lost_workers(client)
    parts: list[str] = []
    if lost:
        kinds = sorted({_task_kind(k) for m in lost for k in (m.get("processing-tasks") or ())})
        parts.append(f"{len(lost)} worker(s) lost unexpectedly" + (f" while running {', '.join(kinds)} tasks"
                                                                   if kinds else ""))
    cluster = getattr(client, "cluster", None)  # an embedded LocalCluster
    nannies = list(getattr(cluster, "workers", {}).values()) if cluster is not None else []
    if nannies and all(str(getattr(n, "status", "")).endswith("closed") for n in nannies):
        parts.append("the local cluster's nannies closed with them, so none is restarted (a worker that cannot "
                     "read a task, e.g. one whose code it cannot import, closes itself and its nanny; "
                     "see the worker errors above)")
    return "; ".join(parts) if parts else "no worker ever joined or all left"


class WorkerWatch:
    """Counts how long the cluster has had no worker while tasks were out; see the module's docstring."""

    def __init__(self, client: Any, limit: float, every: float = 2.0, record: Record | None = None) -> None:
        self.client = client
        self.limit = limit
        self.every = every
        self.record = record
        self.since: float | None = None     # monotonic time the cluster was first seen without workers
        self.reported = False
        self._wall_since: dt.datetime | None = None
        self._last_tick = float("-inf")
        self._refused_until: float | None = None  # newest refusal already seen; None = not looked yet

    def workers(self) -> int:
        try:
            return len(self.client.nthreads())
        except Exception:  # noqa: BLE001 - a lost scheduler is the driver's business (settle), not this watch's
            log.debug("cannot count workers", exc_info=True)
            return -1

    def check(self, waiting: int) -> None:
        """Called when a wait for results timed out with ``waiting`` tasks out."""
        n = self.workers()
        if n != 0:
            if n > 0:
                self._back(n)
            return
        now = time.monotonic()
        if self.since is None:
            self.since = now
            self._wall_since = dt.datetime.now(dt.timezone.utc)
            log.warning("%s: no Dask worker; %d task(s) waiting", self.client.scheduler.address, waiting)
            return
        idle = now - self.since
        if idle < self.limit:
            return
        if self.record is None:
            raise NoWorkersError(f"{self.client.scheduler.address}: no Dask worker for {idle:.0f} s with {waiting} "
                                 f"task(s) waiting (cluster.no-workers-seconds: {self.limit:g}): "
                                 f"{why_no_workers(self.client)}")
        if not self.reported:
            self.reported = True
            assert self._wall_since is not None
            log.warning("%s: no Dask worker for %.0f s, %d task(s) waiting; waiting for workers to join",
                        self.client.scheduler.address, idle, waiting)
            self.record("workers-none", {"scheduler": self.client.scheduler.address, "waiting_tasks": waiting,
                                         "since": self._wall_since.isoformat(timespec="seconds"),
                                         "reason": why_no_workers(self.client)})

    def heard(self) -> None:
        """Called when results came back: after an outage, the workers that sent them are back.

        A wait that times out is not the only moment they can be seen returning. A worker that
        joins and hands back the remaining results between two of the driver's timed-out waits
        (a small job's last tasks) would otherwise leave ``workers-none`` without its
        ``workers-back``, and the dashboard would say the dispatcher waits for workers for ever.
        """
        if self.since is None:
            return
        n = self.workers()
        if n > 0:
            self._back(n)

    def tick(self) -> None:
        """Called on every driver step: at most every ``every`` s, report workers the version guard refused
        since the last look (:mod:`triage.cluster.guard`): audited by serve, a warning in a run."""
        now = time.monotonic()
        if now - self._last_tick < self.every:
            return
        self._last_tick = now
        try:
            seen = refusals(self.client)
        except Exception:  # noqa: BLE001 - a lost scheduler is the driver's business
            log.debug("cannot read refusals", exc_info=True)
            return
        fresh = [(t, m) for t, m in seen if self._refused_until is not None and t > self._refused_until]
        self._refused_until = max([t for t, _ in seen], default=self._refused_until or 0.0)
        for _, msg in fresh:
            details = {"worker": msg.get("worker"), "name": msg.get("name"),
                       "differences": list(msg.get("differences") or ())}
            log.warning("worker %s (%s) joined with other versions and was refused: %s", details["worker"],
                        details["name"], "; ".join(details["differences"]))
            if self.record is not None:
                self.record("worker-refused", details)

    def _back(self, n: int) -> None:
        if self.since is not None and self.reported and self.record is not None:
            outage = round(time.monotonic() - self.since, 1)
            log.warning("%s: %d worker(s) back after %.0f s", self.client.scheduler.address, n, outage)
            self.record("workers-back", {"scheduler": self.client.scheduler.address, "workers": n,
                                         "outage_seconds": outage})
        self.since = None
        self.reported = False
        self._wall_since = None
