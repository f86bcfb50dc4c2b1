"""``triage retry``: put a failed or cancelled job back in the queue."""

from __future__ import annotations

import argparse

from triage import actions
from triage.cli.jobs import EXIT_CODES, add_home, add_json, print_json

EXAMPLE = f"""example:
  triage retry J000042

The job goes to the back of its priority with attempts + 1; a partial results
directory it had is kept for the dispatcher to resume or replace.

{EXIT_CODES}"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retry", help="queue a failed or cancelled job again",
                       description="Queue a failed or cancelled job again (attempts + 1).",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("job", metavar="JOB", help="job id (J000042)")
    add_home(p)
    add_json(p, "the job")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    job = actions.retry(args.home, args.job)
    if args.json:
        print_json(job.to_dict())
    else:
        print(f"{job.id}  {job.case}  {job.exhibit}  queued again (attempt {job.attempts}, {job.priority})")
    return 0
