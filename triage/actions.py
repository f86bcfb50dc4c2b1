"""The examiner's queue operations, each with its audit record: re-prioritise, cancel, retry.

One place for what the CLI verbs (``triage prioritize``/``cancel``/``retry``) and the web
dashboard do, so an action taken in a browser is the same queue operation, audited the same
way, as one typed in a terminal. Every record says who asked (``details.by``: the examiner's
name as given, the login name for the CLI) and through what (``details.via``).

The audit log is checked appendable *before* the queue changes: a damaged log stops the
action rather than leaving a change with no custody record.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager

from triage.audit import AuditLog
from triage.queue import PRIORITIES, Job, Queue
from triage.rules.errors import InputError

Home = str | os.PathLike[str] | None

#: longest examiner name kept in a record; control characters are refused
MAX_WHO = 120


def default_who() -> str:
    """The login name: who a CLI action is by when nobody says otherwise."""
    return getpass.getuser()


def check_who(who: str | None) -> str:
    """A usable examiner name, or InputError: the record must name a person."""
    who = (who or "").strip()
    if not who:
        raise InputError("an action needs the name of the examiner taking it")
    if len(who) > MAX_WHO or any(ord(c) < 32 or ord(c) == 127 for c in who):
        raise InputError(f"examiner name must be at most {MAX_WHO} printable characters")
    return who


@contextmanager
def _opened(home: Home) -> Iterator[tuple[Queue, AuditLog]]:
    log = AuditLog.at(home)
    log.check_writable()
    queue = Queue.at(home)
    try:
        yield queue, log
    finally:
        queue.close()


def _details(who: str, via: str, **extra: object) -> dict[str, object]:
    return {**extra, "by": who, "via": via}


def prioritize(home: Home, target: str, priority: str, *, who: str | None = None,
               via: str = "cli") -> list[tuple[Job, str]]:
    """Set the priority of a job or of a case's queued and running jobs.

    Returns (job, previous priority) pairs; a raise is audited as ``escalate``, anything
    else as ``priority``.
    """
    who = check_who(who if who is not None else default_who())
    with _opened(home) as (queue, log):
        before = {j.id: j.priority for j in queue.list(active_only=True)}
        jobs = queue.prioritize(target, priority)
        out = []
        for job in jobs:
            old = before.get(job.id, job.priority)
            action = "escalate" if PRIORITIES[job.priority] > PRIORITIES[old] else "priority"
            log.append_job(action, job, details=_details(who, via, **{"from": old, "to": job.priority,
                                                                      "target": target}))
            out.append((job, old))
        return out


def cancel(home: Home, target: str, *, who: str | None = None, via: str = "cli") -> list[Job]:
    """Cancel a job or a case's active jobs (queued: at once; running: asked of the dispatcher)."""
    who = check_who(who if who is not None else default_who())
    with _opened(home) as (queue, log):
        jobs = queue.cancel(target)
        for job in jobs:
            log.append_job("cancel", job, details=_details(who, via, requested=job.state == "running",
                                                           target=target))
        return jobs


def retry(home: Home, job_id: str, *, who: str | None = None, via: str = "cli") -> Job:
    """Queue a failed or cancelled job again, at the back of its priority."""
    who = check_who(who if who is not None else default_who())
    with _opened(home) as (queue, log):
        before = queue.get(job_id)
        job = queue.retry(job_id)
        log.append_job("retry", job, details=_details(who, via, was=before.state, failure=before.failure,
                                                      attempt=job.attempts))
        return job

