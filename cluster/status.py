"""What an operator needs to see of a running cluster, gathered in one call.

Everything comes from the scheduler's own view (``scheduler_info``, ``processing``)
plus one ``Client.run`` per worker for what only the worker process knows: the
versions it imports (:mod:`triage.cluster.versions`), how many tasks it has run,
and its read rate. The read rate is the mean of the worker's own system monitor
(``host_disk_io.read_bps``, sampled every 0.5 s by distributed) over the last
minute: it is the host's disk, so workers sharing a host show the same figure,
and reads served from the page cache do not count; it is what tells an operator
whether storage is the bottleneck.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from triage.cluster.guard import refusals
from triage.cluster.versions import cluster_versions, differences, worker_versions

log = logging.getLogger(__name__)

#: seconds of monitor history the read rate is averaged over
RATE_WINDOW = 60.0


@dataclass
class WorkerRow:
    address: str
    name: str
    host: str
    status: str
    threads: int
    memory: int                 # resident bytes of the worker process
    memory_limit: int           # 0 = no limit
    processing: int             # tasks the scheduler has assigned to it now
    executed: int | None        # tasks it has run since it started
    read_bps: float | None      # host disk read bytes/s, mean over the last minute
    nanny: str | None
    versions: dict[str, str | None] = field(default_factory=dict)
    mismatch: list[str] = field(default_factory=list)  # what differs from the client; empty = same


def worker_probe(dask_worker: Any, window: float = RATE_WINDOW) -> dict[str, Any]:
    """Run in each worker process: tasks run so far and the mean disk read rate over ``window`` s."""
    monitor = dask_worker.monitor
    times = list(monitor.quantities.get("time", ()))
    reads = list(monitor.quantities.get("host_disk_io.read_bps", ()))
    rate = None
    if times and reads:
        since = time.time() - window
        recent = [r for t, r in zip(times[-len(reads):], reads) if t >= since]
        rate = sum(recent) / len(recent) if recent else None
    return {"executed": dask_worker.state.executed_count, "read_bps": rate}


def worker_events(client: Any, limit: int = 20) -> list[dict[str, Any]]:
    """The scheduler's own record of workers joining, leaving, being lost, retired or restarted (newest last).

    What an operator (or the dashboard) reads to see churn: a worker ``lost`` with tasks
    processing had them rerun elsewhere; ``retired`` ones handed them back first; ``refused``
    ones joined with other versions than the client's and were closed before any task.
    """
    out: list[dict[str, Any]] = []
    for when, msg in client.get_events("all"):
        action = msg.get("action") if isinstance(msg, dict) else None
        at = dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat(timespec="seconds")
        if action == "add-worker":
            out.append({"time": at, "event": "joined", "workers": [msg["worker"]]})
        elif action == "remove-worker":
            out.append({"time": at, "event": "left" if msg.get("expected") else "lost", "workers": [msg["worker"]],
                        "processing": len(msg.get("processing-tasks") or ())})
        elif action == "retire-workers" and msg.get("retired"):
            out.append({"time": at, "event": "retired", "workers": sorted(msg["retired"])})
        elif action == "restart-workers":
            out.append({"time": at, "event": "restarted", "workers": sorted(msg.get("workers") or [])})
    for when, msg in refusals(client):  # workers that joined with other versions (triage.cluster.guard)
        at = dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat(timespec="seconds")
        out.append({"time": at, "event": "refused", "workers": [msg["worker"]],
                    "differences": list(msg.get("differences") or ())})
    out.sort(key=lambda e: e["time"])  # stable: same-second events keep the scheduler's order
    return out[-limit:]


def cluster_status(client: Any) -> dict[str, Any]:
    """The scheduler, the client's versions and one :class:`WorkerRow` per worker (as plain dicts)."""
    info = client.scheduler_info(n_workers=-1)
    processing = client.processing()
    versions = cluster_versions(client)
    probes = client.run(worker_probe, on_error="return")
    mine = worker_versions()
    rows = []
    for addr, w in sorted(info["workers"].items()):
        probe = probes.get(addr)
        probe = probe if isinstance(probe, dict) else {}
        v = versions.get(addr, {"error": "did not answer"})
        rows.append(WorkerRow(
            address=addr, name=str(w.get("name", addr)), host=w.get("host", ""), status=w.get("status", ""),
            threads=int(w.get("nthreads", 0)), memory=int(w.get("metrics", {}).get("memory", 0)),
            memory_limit=int(w.get("memory_limit") or 0), processing=len(processing.get(addr, ())),
            executed=probe.get("executed"), read_bps=probe.get("read_bps"), nanny=w.get("nanny"),
            versions=v, mismatch=differences(mine, v)))
    return {
        "scheduler": info.get("address", client.scheduler.address),
        "client_versions": mine,
        "workers": [asdict(r) for r in rows],
        "threads": sum(r.threads for r in rows),
        "processing": sum(r.processing for r in rows),
        "mixed": [r.address for r in rows if r.mismatch],
        "events": worker_events(client),
    }


def find_workers(client: Any, wanted: list[str]) -> list[str]:
    """Worker addresses for names, addresses or hosts as an operator types them.

    Raises ``KeyError`` naming the first that matches no worker (the CLI lists the known ones).
    """
    info = client.scheduler_info(n_workers=-1)["workers"]
    out: list[str] = []
    for want in wanted:
        hits = [a for a, w in info.items() if want in (a, str(w.get("name")), w.get("host"), a.split("://", 1)[-1])]
        if not hits:
            raise KeyError(want)
        out += [h for h in sorted(hits) if h not in out]
    return out
