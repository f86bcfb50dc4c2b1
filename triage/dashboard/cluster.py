"""The cluster panel: is a dispatcher up, on which scheduler, with which workers doing what.

* ``triage serve`` publishes its scheduler in ``<state dir>/scheduler.json`` (address, Dask
  dashboard link, its pid); :func:`publish` writes it only while the dispatcher lock is
  free or ours, so a second ``serve`` that will be refused cannot overwrite the first's.
* :func:`dispatcher_pid` says whether the dispatcher lock (``dispatcher.lock``, flock) is
  held and by whom, by reading ``/proc/locks``: *trying* the lock would make a dispatcher
  starting at that moment fail to get it.
* :class:`ClusterWatcher` keeps one ``distributed.Client`` to that scheduler in a background
  thread and refreshes a snapshot (workers, threads, memory, tasks) every few seconds, so
  a page never waits on the network.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triage.cluster.status import worker_events
from triage.dashboard.background import Background

log = logging.getLogger(__name__)

SCHEDULER_FILE = "scheduler.json"
LOCK_FILE = "dispatcher.lock"
EVENTS = 12  # worker events the panel lists (the scheduler keeps its own longer log)


def dispatcher_pid(home: Path) -> int | None:
    """The pid holding the dispatcher lock, or None when no dispatcher runs."""
    path = Path(home) / LOCK_FILE
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:  # no /proc: trust the pid the dispatcher wrote, if that process lives
        return _pid_from_file(path)
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK":  # "N: -> FLOCK ..." lines are waiters, not holders
            continue
        try:
            major, minor, inode = parts[5].split(":")
            if (int(inode) == st.st_ino and int(major, 16) == os.major(st.st_dev)
                    and int(minor, 16) == os.minor(st.st_dev)):
                return int(parts[4])
        except ValueError:
            continue
    return None


def _pid_from_file(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip().rsplit(":", 1)[-1])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def publish(home: Path, client: Any) -> bool:
    """Write scheduler.json for the dashboard (``triage serve`` calls this); False when
    another dispatcher holds the lock (this one is about to be refused)."""
    home = Path(home)
    holder = dispatcher_pid(home)
    if holder is not None and holder != os.getpid():
        return False
    info = {"address": client.scheduler.address, "dashboard": getattr(client, "dashboard_link", None),
            "pid": os.getpid(), "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    home.mkdir(parents=True, exist_ok=True)
    _write(home, info)
    return True


def _write(home: Path, info: dict[str, Any]) -> None:
    tmp = Path(home) / f".{SCHEDULER_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, Path(home) / SCHEDULER_FILE)


def note_no_workers(home: Path, since: str | None) -> None:
    """Mark in scheduler.json that the dispatcher has had tasks waiting and no worker since ``since``
    (None clears it): ``triage serve`` keeps waiting for workers, and the panel says so."""
    info = published(home)
    if info is None or info.get("pid") != os.getpid():
        return
    if since is None:
        info.pop("no_workers_since", None)
    else:
        info["no_workers_since"] = since
    _write(home, info)


def published(home: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((Path(home) / SCHEDULER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("address"), str) else None


@dataclass
class Worker:
    address: str
    name: str
    threads: int
    memory: int | None
    memory_limit: int | None
    executing: int
    tasks: list[str]        # the kinds of task it is processing, with counts
    processing: int


@dataclass
class ClusterState:
    """What the panel shows; ``dispatcher`` None means no dispatcher runs."""

    dispatcher: int | None = None
    scheduler: str | None = None
    dask_dashboard: str | None = None
    workers: list[Worker] = field(default_factory=list)
    error: str | None = None
    checked: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)  # joined/left/lost/retired/restarted, newest first
    no_workers_since: str | None = None  # the dispatcher has tasks waiting and no worker since then (UTC)

    @property
    def threads(self) -> int:
        return sum(w.threads for w in self.workers)


def _task_kinds(keys: Any) -> list[str]:
    """``2 content, 1 carve``: what a worker is busy with, by task kind (keys carry evidence paths)."""
    from dask.utils import key_split

    counts: dict[str, int] = {}
    for k in keys:
        name = key_split(k)[:40]
        counts[name] = counts.get(name, 0) + 1
    return [f"{n} {name}" for name, n in sorted(counts.items())]


class ClusterWatcher(Background):
    """A background thread keeping :attr:`state` fresh (every ``every`` seconds)."""

    THREAD_NAME = "dashboard-cluster"

    def __init__(self, home: Path, every: float = 2.0) -> None:
        super().__init__()
        self.home = Path(home)
        self.every = every
        self.state = ClusterState()
        self._client: Any = None
        self._address: str | None = None
        self._names: dict[str, str] = {}  # every worker address seen -> its name, so a lost one is still named

    def start(self) -> ClusterWatcher:
        """Refresh in the background from now on (connecting to a scheduler can take seconds:
        the server must not wait for it to start answering)."""
        self.state = ClusterState(dispatcher_pid(self.home), checked=time.time())
        super().start()
        return self

    def _close(self) -> None:
        self._disconnect()

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - the panel reports it; the page must live on
                log.debug("cluster refresh failed", exc_info=True)
                self.state = ClusterState(self.state.dispatcher, self.state.scheduler, None, [],
                                          f"{type(exc).__name__}: {exc}", time.time())
            if self._stop.wait(self.every):
                return

    def refresh(self) -> None:
        pid = dispatcher_pid(self.home)
        info = published(self.home) if pid is not None else None
        if pid is None or info is None or info.get("pid") != pid:
            self._disconnect()
            self.state = ClusterState(pid, None, None, [], None if pid is None else
                                      "the dispatcher has not published its scheduler", time.time())
            return
        address = info["address"]
        state = ClusterState(pid, address, info.get("dashboard"), checked=time.time(),
                             no_workers_since=info.get("no_workers_since"))
        try:
            client = self._connect(address)
            sinfo = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else client.scheduler_info()
            processing = client.processing()
            self._names.update({a: str(w.get("name", a)) for a, w in sinfo.get("workers", {}).items()})
            state.events = _named(worker_events(client, limit=EVENTS * 2), self._names)[-EVENTS:][::-1]
        except Exception as exc:  # noqa: BLE001 - a scheduler going away is normal during a restart
            self._disconnect()
            state.error = f"scheduler {address} unreachable ({type(exc).__name__})"
            self.state = state
            return
        for addr, w in sorted(sinfo.get("workers", {}).items()):
            metrics = w.get("metrics", {})
            keys = processing.get(addr, ())
            state.workers.append(Worker(
                address=addr, name=str(w.get("name", addr)), threads=int(w.get("nthreads", 0)),
                memory=metrics.get("memory"), memory_limit=w.get("memory_limit"),
                executing=int(metrics.get("task_counts", {}).get("executing", metrics.get("executing", 0)) or 0),
                tasks=_task_kinds(keys)[:6], processing=len(keys)))
        self.state = state

    def _connect(self, address: str) -> Any:
        if self._client is not None and self._address == address:
            return self._client
        self._disconnect()
        from distributed import Client

        self._client = Client(address, timeout="3s", set_as_default=False)
        self._address = address
        return self._client

    def _disconnect(self) -> None:
        if self._client is not None:
            try:
                self._client.close(timeout=3)
            except Exception:  # noqa: BLE001 - closing a client to a dead scheduler may raise anything
                log.debug("closing the cluster client failed", exc_info=True)
        self._client = None
        self._address = None


def _named(events: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """Each event's workers as ``name (address)`` where the name is known: operators start workers by
    name (``dask worker --name``), and one that comes back does so under a new address. A worker that
    joins under the name of one lost before is marked ``restarted`` (its nanny, or an operator, brought
    it back); the ``lost`` line before it says how many tasks were running there (rerun elsewhere)."""
    out: list[dict[str, Any]] = []
    lost: set[str] = set()
    for e in events:
        who = [names.get(a, a) for a in e["workers"]]
        kind = e["event"]
        if kind == "lost":
            lost.update(who)
        elif kind == "joined" and who[0] in lost and who[0] != e["workers"][0]:
            lost.discard(who[0])
            kind = "restarted"
        out.append({**e, "event": kind,
                    "workers": [f"{n} ({a})" if n != a else a for n, a in zip(who, e["workers"])]})
    return out


def _takes_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):
        return False
