"""``triage dashboard``: the backlog, live, in a browser."""

from __future__ import annotations

import argparse
import sys

from triage.cli.jobs import add_home
from triage.rules.home import state_dir

EXAMPLE = """examples:
  triage dashboard                               # http://127.0.0.1:8765/ (loopback: no token)
  triage dashboard --bind 127.0.0.1:9000 --home /srv/triage
  triage dashboard --bind 0.0.0.0:8765           # other machines: asks for the access token
  triage serve --dashboard 127.0.0.1:8765        # started by the dispatcher, beside it

It reads the queue of the state directory (read-only) and shows every job grouped by
case in the order the dispatcher works them, live; a job's page shows its partitions,
problems, top-ranked items, reports and audit records; actions (priority, cancel,
retry) are confirmed and audited with the examiner's name. It works with no
dispatcher running, and says so.

Beyond loopback a token is needed: made on first use into <state dir>/dashboard.token
(mode 0600) and printed once; send it as 'Authorization: Bearer TOKEN' or log in at
/login. A token file readable by others stops the dashboard from starting.

exit codes: 0 stopped; 2 bad address, port in use or unsafe token file."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the live backlog dashboard in a browser",
                       description="Serve a web page of the backlog, the jobs and the cluster, updated live.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", metavar="HOST:PORT", default=None,
                   help="address to listen on (default from config: 127.0.0.1:8765)")
    p.add_argument("--new-token", action="store_true",
                   help="replace the access token (non-loopback binds) with a new one, shown once")
    add_home(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from triage.dashboard import server

    home = state_dir(args.home)
    plan = server.plan(home, args.bind, new_token=args.new_token)
    if plan.token_made:
        print(f"access token (shown once; kept in {home / 'dashboard.token'}): {plan.token}", flush=True)

    def announce(url: str) -> None:
        print(f"dashboard: {url}  (Ctrl-C stops it)", flush=True)

    try:
        server.run(plan, announce)
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    return 0
