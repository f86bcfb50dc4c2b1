"""The one event loop: submits the tasks of any number of runs to a Dask cluster and hands
each result back to its run. ``triage run`` drives one image with it, ``triage serve``
a whole backlog (:mod:`triage.dispatcher`).

Each run keeps at most ``window`` tasks in flight (None: no bound), submitted with Dask
priority ``run priority x 1000 + task priority``: when a worker frees up, the scheduler
hands it the most urgent ready task, so a more urgent job takes the workers as their
current tasks end, and a priority change applies from the next task on.

Waits for results are cut into slices of a few seconds; after each empty slice a
:class:`~triage.cluster.watch.WorkerWatch` counts how long the cluster has had no worker.
By default (``triage run``) a cluster without workers for ``cluster.no-workers-seconds``
ends the run with a one-line :class:`~triage.cluster.watch.NoWorkersError` instead of
waiting forever; ``triage serve`` gives the watch a ``record`` callback and keeps waiting.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from triage import config
from triage.cluster.reconnect import SchedulerLost, is_loss, settle
from triage.cluster.watch import WorkerWatch
from triage.runstate import ImageRun
from triage.tasks import Task

log = logging.getLogger(__name__)


class Driver:
    def __init__(self, client: Any, window: int | None = None, watch: WorkerWatch | None = None) -> None:
        self.client = client
        self.window = window
        self.watch = watch or WorkerWatch(client, float(config.get("cluster.no-workers-seconds")))
        self._inflight: dict[str, tuple[ImageRun, Task, Any]] = {}
        self._count: dict[int, int] = {}  # id(run) -> tasks in flight
        self._keys = itertools.count()

    def fill(self, run: ImageRun) -> None:
        """Submit what ``run`` has ready, within its window."""
        if is_loss(self.client):
            self._lost(SchedulerLost(f"{self.client.scheduler.address}: connection to the scheduler lost"))
        room = None if self.window is None else self.window - self._count.get(id(run), 0)
        for task in run.take(room):
            key = f"{task.kind.NAME}-{run.ref.path}-{task.name}-{id(run)}-{next(self._keys)}"
            fut = self.client.submit(task.kind.func, task.arg, key=key, pure=False,
                                     priority=run.priority * 1000 + task.priority)
            self._inflight[fut.key] = (run, task, fut)
            self._count[id(run)] = self._count.get(id(run), 0) + 1

    def step(self, runs: list[ImageRun], timeout: float | None = None) -> list[tuple[ImageRun, BaseException]]:
        """Fill every run, wait for at least one result (up to ``timeout``), hand back all that are done.

        A run whose result handling raises (its image is unusable, its disk is full) is
        dropped from the driver and returned with the error; the other runs go on.
        """
        for run in runs:
            self.fill(run)
        self.watch.tick()  # workers refused for other versions since the last step (serve audits them)
        if not self._inflight:
            return []
        try:
            done = self._wait(timeout)
        except Exception as exc:  # noqa: BLE001 - only a lost scheduler is translated; anything else goes up
            if is_loss(self.client, exc):  # wait() on futures the loss cancelled
                self._lost(SchedulerLost(f"{self.client.scheduler.address}: connection to the scheduler lost"))
            raise
        failed: list[tuple[ImageRun, BaseException]] = []
        for fut in done:
            entry = self._inflight.pop(fut.key, None)
            if entry is None:  # its run was dropped meanwhile
                continue
            run, task, _ = entry
            self._count[id(run)] -= 1
            try:  # a future cancelled by a lost scheduler is not a failed task (triage.cluster.reconnect)
                settled = settle(self.client, fut, waiting=lambda: self.watch.check(len(self._inflight) + 1),
                                 every=self.watch.every)
            except SchedulerLost as exc:
                self._lost(exc)
            # one crashed task must not lose the rest of the device: its error is the outcome
            outcome = settled.error if settled.error is not None else settled.value
            try:
                run.task_done(task, outcome)
            except Exception as exc:  # noqa: BLE001 - this run is over; the others are not
                self.drop(run)
                failed.append((run, exc))
        if done:  # results came back: a reported outage is over even if no wait timed out since
            self.watch.heard()
        return failed

    def _wait(self, timeout: float | None) -> set[Any]:
        """Futures done within ``timeout`` (None: until one is), asking the watch about workers every few seconds."""
        from distributed import wait

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = self.watch.every if deadline is None else min(self.watch.every, deadline - time.monotonic())
            try:
                return wait([f for _, _, f in self._inflight.values()], timeout=max(0.0, left),
                            return_when="FIRST_COMPLETED").done
            except TimeoutError:
                self.watch.check(len(self._inflight))  # raises in a run whose cluster has had no worker too long
                if deadline is not None and time.monotonic() >= deadline:
                    return set()

    def drop(self, run: ImageRun) -> None:
        """Cancel what ``run`` has in flight and forget it (its finished tasks are checkpointed)."""
        mine = [k for k, (r, _, _) in self._inflight.items() if r is run]
        if mine:
            self.client.cancel([self._inflight[k][2] for k in mine])
        for k in mine:
            del self._inflight[k]
        self._count.pop(id(run), None)
        run.todo.clear()
        run.pending = 0

    def _lost(self, exc: SchedulerLost) -> None:
        """The futures died with the connection: forget them (nothing to cancel) and stop the caller."""
        for run, _, _ in self._inflight.values():
            run.todo.clear()
        self._inflight.clear()
        self._count.clear()
        raise exc

    def drive(self, run: ImageRun) -> None:
        """Run one image to its end; its first fatal error is raised."""
        while not run.finished:
            failed = self.step([run])
            if failed:
                raise failed[0][1]
