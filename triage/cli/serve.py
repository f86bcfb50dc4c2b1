"""``triage serve``: the dispatcher that works the queued backlog on one cluster."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from triage import config
from triage.audit import AuditLog
from triage.cli.cluster import tls_security
from triage.cluster.connect import connect, parse_workers
from triage.cluster.evidence import publish
from triage.cluster.reconnect import SchedulerLost, is_loss, supervise
from triage.cluster.watch import WorkerWatch
from triage.dashboard.cluster import note_no_workers
from triage.dashboard.cluster import publish as publish_cluster
from triage.dashboard.server import beside
from triage.dispatcher import Dispatcher
from triage.queue import PRIORITIES
from triage.rules.errors import ClusterError
from triage.rules.home import state_dir

log = logging.getLogger(__name__)

EXAMPLE = """examples:
  triage serve                                   # embedded local cluster, default state directory
  triage serve --workers 1:8                     # local cluster grows to 8 workers with the backlog, shrinks when idle
  triage serve --scheduler tcp://10.0.0.5:8786   # a shared cluster (workers must see the images)
  triage serve --home /srv/triage --once         # work until the queue is empty, then exit
  triage serve --dashboard 127.0.0.1:8765        # and the live backlog page beside it

Stop it with Ctrl-C or SIGTERM at any time: queued jobs stay queued, running ones resume
from their finished tasks when a dispatcher starts again. Exit codes: 0 stopped; 3 another
dispatcher already works this state directory; 5 no cluster, or a mixed cluster."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the dispatcher: work the job queue by case priority",
                       description="Take jobs from the queue (see 'triage submit') and triage many at once on one "
                       "Dask cluster, most urgent case first, at task granularity.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", default=None, help="state directory (default: $TRIAGE_HOME or ~/.local/share/triage)")
    p.add_argument("--scheduler", metavar="ADDR", default=None,
                   help="address of a running `dask scheduler` (default: start a local cluster)")
    p.add_argument("--workers", default=None, metavar="N|MIN:MAX",
                   help="worker processes of the local cluster: N fixed, or MIN:MAX adaptive (grows while tasks "
                   "wait, releases idle workers); default one per core")
    p.add_argument("--max-jobs", type=int, default=None, help="jobs running at once (default from config)")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--dashboard", metavar="HOST:PORT", default=None,
                   help="also serve the web dashboard (see 'triage dashboard --help') on this address")
    p.add_argument("--escalate-to", choices=[*PRIORITIES, "none"], default=None,
                   help="priority a case gets on its first known-bad hit (default from config; none = never)")
    p.set_defaults(func=run)


def serve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """connect()'s settings for serve: like run's, plus the adaptive range and TLS."""
    return {
        "scheduler": args.scheduler or config.get("cluster.scheduler"),
        "workers": parse_workers(args.workers if args.workers is not None else config.get("cluster.workers")),
        "threads_per_worker": int(config.get("cluster.threads-per-worker")),
        "memory_limit": config.get("cluster.memory-limit"),
        "security": tls_security(),
        "adapt_interval": str(config.get("cluster.adapt-interval")),
        "adapt_wait_count": int(config.get("cluster.adapt-wait-count")),
    }


class ReconnectingDispatcher(Dispatcher):
    """The dispatcher, with a scheduler outage turned into a clean stop instead of failed tasks.

    The driver (:mod:`triage.driver`) settles every result first and raises
    :class:`SchedulerLost` when the loss is what ended a future, forgetting the dead
    futures; ``serve``'s own shutdown then puts the running jobs back in line (audited)
    and :func:`supervise` starts a new dispatcher once the scheduler is back.
    """

    def serve(self) -> None:
        try:
            super().serve()  # on any exit it puts its running jobs back in line (audited)
        except SchedulerLost:
            raise
        except Exception as exc:  # noqa: BLE001 - only a loss is translated; anything else goes on up
            if is_loss(self.client, exc):
                raise SchedulerLost(f"{self.client.scheduler.address}: connection to the scheduler lost") from exc
            raise

    def _claim(self) -> None:
        self.driver.watch.tick()  # also while idle: a worker refused for its versions is audited at once
        super()._claim()

    def _start(self, job: Any) -> None:
        super()._start(job)
        # each worker checks its copy of the images against the dispatcher's (triage.workers.pathmap)
        try:
            publish(self.client, [run.ref for run in self.active[job.id].runs])
        except ClusterError as exc:  # a lost scheduler is noticed by the driver; workers still check sizes
            log.warning("%s: %s", job.id, exc)


def run(args: argparse.Namespace) -> int:
    escalate = "" if args.escalate_to is None else (None if args.escalate_to == "none" else args.escalate_to)
    settings = serve_settings(args)
    window = None
    if isinstance(settings["workers"], tuple):
        # the dispatcher sizes each job's window from the workers there are when it starts; an adaptive cluster
        # only grows when tasks wait, so the window is sized for the most it may grow to
        window = max(2, int(config.get("dispatcher.window-per-worker")) * settings["workers"][1]
                     * settings["threads_per_worker"])

    def work(client: Any) -> None:
        # where operators point `triage cluster status` (also for the embedded cluster) and a browser
        print(f"triage serve: scheduler {client.scheduler.address}, dashboard {client.dashboard_link}", flush=True)
        home = state_dir(args.home)
        publish_cluster(home, client)  # the dashboard's cluster panel reads it
        dispatcher = ReconnectingDispatcher(client, args.home, max_jobs=args.max_jobs, escalate_to=escalate,
                                            once=args.once, window=window)

        def workers_gone(action: str, details: dict[str, Any]) -> None:
            # external workers may come back: wait, but say so in the audit log and on the dashboard
            dispatcher.audit.append(action, details=details)
            note_no_workers(home, details.get("since") if action == "workers-none" else None)

        dispatcher.driver.watch = WorkerWatch(client, float(config.get("cluster.no-workers-seconds")),
                                              record=workers_gone)
        dispatcher.serve()

    dash = beside(state_dir(args.home), args.dashboard, lambda line: print(line, flush=True)) \
        if args.dashboard else None  # a bad address or token file refuses to start, before any work
    try:
        if not settings["scheduler"]:  # an embedded cluster lives and dies with this process
            with connect(**settings) as client:
                work(client)
            return 0
        audit = AuditLog.at(args.home)
        supervise(lambda: connect(**settings), work, budget=float(config.get("cluster.reconnect-seconds")),
                  record=lambda action, details: audit.append(action, details=details))
    finally:
        if dash is not None:
            dash.stop()
    return 0
