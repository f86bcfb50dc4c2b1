"""Surviving a lost scheduler: notice it before a task is misread, reconnect with back-off, start again.

Why this is needed: when a client loses its scheduler, distributed cancels every
future it holds (reason ``scheduler-connection-lost``), finished ones included, and
``Future.result()`` then raises ``CancelledError``, an ordinary ``Exception``. A
dispatcher reading that as "this task failed" would write a wrong status into the
results (and a failed walk or image hash into its checkpoints). So every result is
*settled* here first (:func:`settle`): a loss raises :class:`SchedulerLost` and
nothing of that future is used. The dispatcher then stops the way it stops on
SIGTERM (its running jobs go back in line with their checkpoints), and
:func:`supervise` reconnects with exponential back-off, records the outage, and
runs the work again; the jobs resume from their finished tasks.

Nothing here knows about jobs or the audit log: the control plane passes a
``record`` callback and the work to run, so the same loop fits any long-lived client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from triage.rules.errors import ClusterError

log = logging.getLogger(__name__)

LOST_REASON = "scheduler-connection-lost"


class SchedulerLost(ClusterError):
    """The scheduler went away under a running client; the work must stop and start again."""


def is_loss(client: Any, exc: BaseException | None = None) -> bool:
    """Whether ``exc`` (from a future's result) or the client's state means the scheduler is gone."""
    reasons = {getattr(exc, "reason", None)} | {g.reason for g in getattr(exc, "error_groups", ())}
    if LOST_REASON in reasons:  # one future's FutureCancelledError, or wait()'s FuturesCancelledError
        return True
    if exc is not None and isinstance(exc, OSError) and getattr(client, "status", "running") != "running":
        return True
    return getattr(client, "status", "running") not in ("running", "newly-created")


@dataclass(frozen=True)
class Settled:
    """A finished future's key and outcome, fetched once: what a task-done handler reads instead of the future."""

    key: str
    value: Any = None
    error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def settle(client: Any, fut: Any, waiting: Callable[[], None] | None = None, every: float = 2.0) -> Settled:
    """Fetch ``fut``'s outcome; raise :class:`SchedulerLost` if the scheduler's loss is what ended it.

    A finished task's result lives on the worker that computed it: if that worker dies before the
    result is fetched, the scheduler runs the task again, and with no worker left the fetch would
    wait for ever. ``waiting`` is called every ``every`` s while the result is not back (the
    driver's watch on the worker count: a run stops after ``cluster.no-workers-seconds``, serve
    says it waits for workers); without it the fetch waits as long as it takes.

    Only the wait for the fetch times out, never the fetch: ``Future.result(timeout)`` cancels the
    fetch it gives up on, and a cancelled fetch leaves the client's shared gather cancelled, so
    that this result and every later one on the client raise (an ``UnboundLocalError`` out of
    distributed's ``sync``): one result slower to fetch than ``every`` (a big batch, a busy
    network) turned every task after it into a failed one. So the fetch runs on the client's
    event loop until it ends, however long that takes, and this thread waits for it in steps.
    """
    owner = fut.client  # the client that holds the future (``client`` may be a wrapper around it)
    coro = owner.gather(fut, asynchronous=True)
    try:
        fetch = asyncio.run_coroutine_threadsafe(coro, owner.loop.asyncio_loop)
    except Exception as exc:  # noqa: BLE001 - e.g. the client's loop closed: judged like any outcome below
        coro.close()
        fetch = concurrent.futures.Future()
        fetch.set_exception(exc)
    while not concurrent.futures.wait([fetch], timeout=None if waiting is None else every).done:
        waiting()  # not back yet: its worker may be gone and the task running again (raises to stop the run)
    try:
        return Settled(fut.key, fetch.result())
    except Exception as exc:  # noqa: BLE001 - a task's own error is an outcome, handed on as it is
        if is_loss(client, exc):
            raise SchedulerLost(f"lost the scheduler while task {fut.key} was out ({type(exc).__name__})") from exc
        return Settled(fut.key, error=exc)


def backoff(first: float = 1.0, cap: float = 30.0) -> Iterator[float]:
    """1, 2, 4, ... seconds, at most ``cap``: quick for a restart, gentle on a long outage."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * 2)


def supervise(open_client: Callable[[], AbstractContextManager[Any]], work: Callable[[Any], None], *,
              budget: float, record: Callable[[str, dict[str, Any]], None],
              sleep: Callable[[float], None] = time.sleep) -> None:
    """Run ``work(client)``; after a :class:`SchedulerLost`, reconnect (back-off, for up to ``budget`` s) and rerun.

    ``record(action, details)`` is called with ``scheduler-lost``, ``scheduler-reconnected``
    (with the outage's length) and ``scheduler-unreachable`` (then ClusterError is raised).
    A first connection that fails raises at once, as without supervision.
    """
    lost_at: float | None = None
    attempts = 0
    delays = backoff()
    while True:
        try:
            with open_client() as client:
                if lost_at is not None:
                    outage = round(time.monotonic() - lost_at, 1)
                    log.warning("scheduler %s back after %.1f s", client.scheduler.address, outage)
                    record("scheduler-reconnected", {"scheduler": client.scheduler.address,
                                                     "outage_seconds": outage, "attempts": attempts})
                    lost_at, attempts, delays = None, 0, backoff()
                work(client)
                return
        except SchedulerLost as exc:
            lost_at = time.monotonic()
            log.warning("%s; reconnecting", exc)
            record("scheduler-lost", {"reason": str(exc)})
            continue
        except ClusterError as exc:
            if lost_at is None:
                raise
            attempts += 1
            waited = time.monotonic() - lost_at
            if waited >= budget:
                record("scheduler-unreachable", {"after_seconds": round(waited, 1), "attempts": attempts,
                                                 "last_error": str(exc)})
                raise ClusterError(f"scheduler lost and not back after {waited:.0f} s ({exc})") from exc
            delay = min(next(delays), max(0.0, budget - waited))
            log.info("scheduler still unreachable (%s); next try in %.0f s", exc, delay)
            sleep(delay)
