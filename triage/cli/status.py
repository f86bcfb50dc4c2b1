"""``triage status``: the backlog at a glance."""

from __future__ import annotations

import argparse

from triage.cli.jobs import (add_home, add_json, human_seconds, open_queue, print_json, priority_text,
                             progress_text, state_text)
from triage.queue import Job

EXAMPLE = """examples:
  triage status
  triage status --case OP-2291
  triage status --active --json | jq '.jobs[] | select(.state == "queued") | .id'

POS is the place in the queue (1 = next); ETA is until the job is done, from the throughput
measured on finished jobs (- until one has finished). PRIORITY shows ageing as low→normal.
DEVICE is a finished job's device tier and score (see 'triage top JOB' for why).

exit codes: 0 done; 2 usage; 3 bad input (unusable --home)."""

COLUMNS = ("JOB", "CASE", "EXHIBIT", "PRIORITY", "STATE", "PROGRESS", "FILES", "POS", "ETA", "HITS", "DEVICE")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show queued, running and finished jobs",
                       description="List the jobs: case, exhibit, priority, state, progress in bytes and files, "
                       "position in the queue, ETA and known-bad hits.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default=None, help="only this case's jobs")
    p.add_argument("--active", action="store_true", help="only queued and running jobs")
    add_home(p)
    add_json(p, "the jobs")
    p.set_defaults(func=run)


def row(job: Job) -> tuple[str, ...]:
    return (job.id, job.case, job.exhibit, priority_text(job), state_text(job), progress_text(job),
            f"{job.files_done:,}", str(job.position or "-"),
            human_seconds(job.eta_seconds) if job.state in ("queued", "running") else "-", str(job.known_bad_hits),
            device_text(job))


def job_ranking(job: Job) -> dict | None:
    """The strongest device ranking among a finished job's images (None before it is done, or if unranked)."""
    from triage.rules.rulefile import TIERS

    found = [i["ranking"] for i in (job.summary or {}).get("images", []) if i.get("ranking")]
    return min(found, key=lambda k: (TIERS.index(k["tier"]), -k["score"])) if found else None


def device_text(job: Job) -> str:
    ranking = job_ranking(job)
    return f"{ranking['tier']} {ranking['score']}" if ranking else "-"


def table(jobs: list[Job]) -> str:
    rows = [COLUMNS, *(row(j) for j in jobs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def run(args: argparse.Namespace) -> int:
    queue = open_queue(args)
    jobs = queue.list(args.case, active_only=args.active)
    if args.json:
        print_json({"throughput_bytes_per_second": queue.throughput(),
                    "jobs": [{**j.to_dict(), "ranking": job_ranking(j)} for j in jobs]})
    elif not jobs:
        print("no jobs" + (f" for case {args.case}" if args.case else ""))
    else:
        print(table(jobs))
    return 0
