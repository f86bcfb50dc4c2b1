"""``triage cancel``: stop a job, or every queued and running job of a case."""

from __future__ import annotations

import argparse

from triage import actions
from triage.cli.jobs import EXIT_CODES, add_home, add_json, print_json

EXAMPLE = f"""examples:
  triage cancel J000042
  triage cancel OP-2291          # every queued or running job of the case

A queued job is cancelled at once; a running one is asked to stop and the dispatcher
cancels it at its next check. A name that is both a job id and a case means the job.

{EXIT_CODES}"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cancel", help="cancel a job or a case's jobs",
                       description="Cancel a queued or running job, or all of a case's queued and running jobs.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="JOB|CASE", help="job id (J000042) or case reference")
    add_home(p)
    add_json(p, "the affected jobs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    jobs = actions.cancel(args.home, args.target)
    if args.json:
        print_json([j.to_dict() for j in jobs])
        return 0
    for job in jobs:
        what = "cancel requested (running; the dispatcher stops it)" if job.state == "running" else "cancelled"
        print(f"{job.id}  {job.case}  {job.exhibit}  {what}")
    return 0
