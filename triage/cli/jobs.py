"""Pieces shared by the job verbs (submit, status, cancel, retry, prioritize, results).

Not a verb itself: each verb has its own module, registered in ``main.VERBS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from triage.audit import AuditLog
from triage.queue import PRIORITIES, Job, Queue
from triage.humanize import human_seconds  # noqa: F401 - status.py imports it from here

PRIORITY_CHOICES = sorted(PRIORITIES, key=PRIORITIES.get, reverse=True)

#: exit codes of the job verbs, for their --help
EXIT_CODES = ("exit codes: 0 done; 2 usage; 3 bad input (missing or unreadable image, no such job or case,\n"
              "or the job's state does not allow it, e.g. cancelling a finished job); 7 the audit log\n"
              "is damaged, so nothing was changed (see 'triage audit verify').")


def add_home(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", metavar="DIR", default=None,
                   help="state directory holding queue.sqlite and audit.log "
                        "(default: $TRIAGE_HOME, else ~/.local/share/triage)")


def add_json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")


def open_queue(args: argparse.Namespace) -> Queue:
    return Queue.at(args.home)


def open_audit(args: argparse.Namespace) -> AuditLog:
    """The audit log, checked appendable *before* the verb changes the queue: a damaged log
    stops the action rather than leaving a change with no custody record."""
    log = AuditLog.at(args.home)
    log.check_writable()
    return log


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    print()


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def priority_text(job: Job) -> str:
    """``low`` or, once aged, ``low→normal``."""
    if job.state == "queued" and job.effective_priority != job.priority:
        return f"{job.priority}→{job.effective_priority}"
    return job.priority


def state_text(job: Job) -> str:
    if job.state == "running" and job.cancel_requested:
        return "running (cancel requested)"
    return job.state


def progress_text(job: Job) -> str:
    if job.state == "queued" and job.bytes_done == 0:
        return human_bytes(job.bytes_total)
    pct = f" {100 * job.bytes_done // job.bytes_total}%" if job.bytes_total else ""
    return f"{human_bytes(job.bytes_done)}/{human_bytes(job.bytes_total)}{pct}"


def job_word(jobs: list[Job]) -> str:
    return "1 job" if len(jobs) == 1 else f"{len(jobs)} jobs"
