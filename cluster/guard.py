"""Refusing a worker that joins a running cluster with other versions than the client's.

:func:`triage.cluster.versions.check_cluster` looks at the workers there are when a
client connects; a worker started later (an un-upgraded machine added to a running
backlog) would otherwise take tasks and could change a table. :class:`VersionGuard` is
a Dask worker plugin: registered once by the client, the scheduler hands it to every
worker that joins from then on, and Dask sets plugins up *before* the worker reads its
first task message (``Worker._register_with_scheduler``). A worker whose versions
differ pauses at once (the scheduler stops assigning it tasks), records why on the
scheduler's event topic :data:`TOPIC` (``triage cluster status``, the dashboard and
``triage serve``'s audit log read it) and closes itself and its nanny, so the nanny
does not bring the same installation back.

This module travels *by value* (``cloudpickle.register_pickle_by_value``, see
:func:`register`): a worker with another evidence-triage, or none, cannot import a
class it does not have, and a plugin it cannot unpickle would kill it without a word.
So nothing here is imported at module level beyond the standard library, and the
version probe is imported on the worker inside a ``try``: an installation without it
is refused as well, saying so.
"""

from __future__ import annotations

import logging
from typing import Any

TOPIC = "triage-versions"
NAME = "triage-version-guard"

log = logging.getLogger("triage.cluster.guard")


def _worker_differences(expected: dict[str, Any]) -> list[str]:
    try:
        from triage.cluster.versions import differences, worker_versions

        return differences(expected, worker_versions())
    except Exception as exc:  # noqa: BLE001 - an installation without our probe is as mixed as one with another
        return [f"cannot run triage's version probe: {type(exc).__name__}: {' '.join(str(exc).split())}"]


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _Base
except ImportError:  # pragma: no cover - distributed is a dependency; keeps the module importable alone
    _Base = object  # type: ignore[assignment,misc]


class VersionGuard(_Base):  # type: ignore[misc,valid-type]
    """Checks each worker's versions against ``expected`` (the client's) when it joins."""

    # not idempotent: the scheduler keeps a plugin after its client leaves, so each client's registration
    # replaces the last one; a long-lived scheduler must not hold an older client's versions against
    # workers upgraded since (the client that connects checks the present workers itself first)
    idempotent = False

    def __init__(self, expected: dict[str, Any]) -> None:
        self.expected = expected

    async def setup(self, worker: Any) -> None:
        diff = _worker_differences(self.expected)
        if not diff:
            return
        from distributed.core import Status

        log.error("refusing to run triage tasks on %s: %s", worker.address, "; ".join(diff))
        worker.status = Status.paused  # the scheduler assigns it nothing from now on
        worker.log_event(TOPIC, {"action": "refused", "worker": worker.address, "name": str(worker.name),
                                 "differences": diff})
        worker.loop.add_callback(worker.close, nanny=True, reason="triage: versions differ from the client's")


def register(client: Any, expected: dict[str, Any]) -> None:
    """Install the guard on the cluster (every present and future worker)."""
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    client.register_plugin(VersionGuard(expected), name=NAME)


def refusals(client: Any) -> list[tuple[float, dict[str, Any]]]:
    """``(time, message)`` of every worker the guard refused, oldest first."""
    return [(t, m) for t, m in client.get_events(TOPIC) if isinstance(m, dict) and m.get("action") == "refused"]
