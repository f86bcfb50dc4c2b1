"""``triage serve``: the dispatcher that works the queued backlog on one cluster."""

from __future__ import annotations

import argparse

from triage.cli.run import add_cluster_options, cluster_settings
from triage.cluster.connect import connect
from triage.dashboard.cluster import publish
from triage.dashboard.server import beside
from triage.dispatcher import Dispatcher
from triage.queue import PRIORITIES
from triage.rules.home import state_dir

EXAMPLE = """examples:
  triage serve                                   # embedded local cluster, default state directory
  triage serve --scheduler tcp://10.0.0.5:8786   # a shared cluster (workers must see the images)
  triage serve --home /srv/triage --once         # work until the queue is empty, then exit
  triage serve --dashboard 127.0.0.1:8765        # and the live backlog page beside it

Stop it with Ctrl-C or SIGTERM at any time: queued jobs stay queued, running ones resume
from their finished tasks when a dispatcher starts again. Exit codes: 0 stopped; 3 another
dispatcher already works this state directory; 5 no cluster."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the dispatcher: work the job queue by case priority",
                       description="Take jobs from the queue (see 'triage submit') and triage many at once on one "
                       "Dask cluster, most urgent case first, at task granularity.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", default=None, help="state directory (default: $TRIAGE_HOME or ~/.local/share/triage)")
    add_cluster_options(p)
    p.add_argument("--max-jobs", type=int, default=None, help="jobs running at once (default from config)")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--dashboard", metavar="HOST:PORT", default=None,
                   help="also serve the web dashboard (see 'triage dashboard --help') on this address")
    p.add_argument("--escalate-to", choices=[*PRIORITIES, "none"], default=None,
                   help="priority a case gets on its first known-bad hit (default from config; none = never)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    escalate = "" if args.escalate_to is None else (None if args.escalate_to == "none" else args.escalate_to)
    dash = beside(state_dir(args.home), args.dashboard, lambda line: print(line, flush=True)) \
        if args.dashboard else None  # a bad address or token file refuses to start, before any work
    try:
        with connect(**cluster_settings(args)) as client:
            publish(state_dir(args.home), client)  # the dashboard's cluster panel reads it
            Dispatcher(client, args.home, max_jobs=args.max_jobs, escalate_to=escalate, once=args.once).serve()
    finally:
        if dash is not None:
            dash.stop()
    return 0
