"""``triage prioritize``: change the priority of a job or of a whole case."""

from __future__ import annotations

import argparse

from triage import actions
from triage.cli.jobs import EXIT_CODES, PRIORITY_CHOICES, add_home, add_json, print_json

EXAMPLE = f"""examples:
  triage prioritize OP-2291 --priority critical    # every queued and running job of the case
  triage prioritize J000042 --priority low

Queued jobs move in the queue at once; running jobs pass the new priority to their
remaining tasks when the dispatcher next checks. A raise is audited as 'escalate'.

{EXIT_CODES}"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prioritize", help="change the priority of a job or a case",
                       description="Set the priority of a job, or of all queued and running jobs of a case.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="CASE|JOB", help="case reference or job id (J000042)")
    p.add_argument("--priority", required=True, choices=PRIORITY_CHOICES)
    add_home(p)
    add_json(p, "the affected jobs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    changed = actions.prioritize(args.home, args.target, args.priority)
    if args.json:
        print_json([j.to_dict() for j, _ in changed])
        return 0
    for job, old in changed:
        where = f"position {job.position}" if job.position else job.state
        print(f"{job.id}  {job.case}  {job.exhibit}  {old} → {job.priority}  ({where})")
    return 0
