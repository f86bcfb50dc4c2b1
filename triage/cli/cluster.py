"""``triage cluster status|retire|certs``: see and change the compute the backlog runs on."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from triage import config
from triage.cluster.connect import connect
from triage.rules.errors import ClusterError

EXAMPLE = """examples:
  triage cluster status --scheduler tcp://10.0.0.5:8786        # workers, load, versions
  triage cluster status --json | jq '.workers[].processing'
  triage cluster retire tcp://10.0.0.7:40123                   # graceful: its tasks finish or move first
  triage cluster certs /etc/triage/tls --host sched.lab.local  # private CA + scheduler/worker/client certs

exit codes: 0 done; 2 usage; 3 certificate files exist already; 5 no cluster, or (status) a
mixed cluster: a worker imports another evidence-triage, pytsk3 or libewf than this client."""


def tls_security(role: str = "client") -> Any:
    """The ``Security`` the config's ``cluster.tls.*`` keys describe, or None (plain TCP)."""
    from triage.cluster.security import make_security

    return make_security(config.get("cluster.tls.ca-file"), config.get("cluster.tls.cert"),
                         config.get("cluster.tls.key"), role=role)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="see the cluster's workers, retire one, make TLS certificates",
                       description="Operate the Dask cluster the backlog runs on.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="cluster_verb", metavar="ACTION", required=True)
    s = verbs.add_parser("status", help="workers: host, threads, memory, tasks, read rate, versions",
                         epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--scheduler", metavar="ADDR", default=None, help="scheduler address (default from config)")
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.set_defaults(func=status)
    r = verbs.add_parser("retire", help="retire workers gracefully: running tasks finish or move, nothing is lost",
                         epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("workers", nargs="+", metavar="WORKER", help="worker address, name or host")
    r.add_argument("--scheduler", metavar="ADDR", default=None, help="scheduler address (default from config)")
    r.add_argument("--json", action="store_true", help="print what was retired as JSON")
    r.set_defaults(func=retire)
    c = verbs.add_parser("certs", help="make a private CA and scheduler, worker and client certificates",
                         epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("directory", type=Path, metavar="DIR", help="where to write them (must not hold any yet)")
    c.add_argument("--host", action="append", default=[], metavar="NAME",
                   help="host name or IP the scheduler is reached by (repeatable; localhost is always in)")
    c.add_argument("--days", type=int, default=825, help="validity (default 825 days)")
    c.add_argument("--json", action="store_true", help="print the files written as JSON")
    c.set_defaults(func=certs)


def _scheduler(args: argparse.Namespace) -> str:
    address = args.scheduler or config.get("cluster.scheduler")
    if not address:
        raise ClusterError("no scheduler: give --scheduler ADDR or set triage.cluster.scheduler")
    return address


def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_status(st: dict[str, Any]) -> str:
    rows = st["workers"]
    lines = [f"scheduler {st['scheduler']}: {len(rows)} worker(s), {st['threads']} thread(s), "
             f"{st['processing']} task(s) processing"]
    head = ("WORKER", "HOST", "THR", "MEMORY / LIMIT", "PROC", "DONE", "DISK READ/s", "TRIAGE", "PYTSK3", "LIBEWF")
    table = [head]
    for w in rows:
        v = w["versions"]
        table.append((w["address"], w["host"], str(w["threads"]),
                      f"{_human(w['memory'])} / {_human(w['memory_limit']) if w['memory_limit'] else 'none'}",
                      str(w["processing"]), "-" if w["executed"] is None else str(w["executed"]),
                      _human(w["read_bps"]), str(v.get("evidence-triage", "?")),
                      str(v.get("pytsk3", "?")).split(" ")[0], str(v.get("libewf", "?"))))
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines += ["  ".join(c.ljust(wd) for c, wd in zip(r, widths)).rstrip() for r in table]
    for e in st.get("events", [])[-8:]:
        extra = f" with {e['processing']} task(s) processing, rerun elsewhere" if e.get("processing") else ""
        extra += f": {'; '.join(e['differences'])}" if e.get("differences") else ""  # refused: other versions
        lines.append(f"{e['time']}  {e['event']:<9} {', '.join(e['workers'])}{extra}")
    cv = st["client_versions"]
    lines.append(f"client: evidence-triage {cv['evidence-triage']}, pytsk3 {cv['pytsk3']}, libewf {cv['libewf']}")
    for w in rows:
        if w["mismatch"]:
            lines.append(f"MIXED  {w['address']} ({w['host']}): {'; '.join(w['mismatch'])}")
    if st["mixed"]:
        lines.append(f"jobs refuse to start until these {len(st['mixed'])} worker(s) match the client")
    return "\n".join(lines)


def status(args: argparse.Namespace) -> int:
    from triage.cluster.status import cluster_status

    with connect(_scheduler(args), security=tls_security(), check_versions=False) as client:
        st = cluster_status(client)
    if args.json:
        json.dump(st, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print(format_status(st))
    return ClusterError.exit_code if st["mixed"] else 0


def retire(args: argparse.Namespace) -> int:
    from triage.cluster.status import find_workers

    with connect(_scheduler(args), security=tls_security(), check_versions=False) as client:
        try:
            addresses = find_workers(client, args.workers)
        except KeyError as exc:
            known = ", ".join(sorted(client.scheduler_info(n_workers=-1)["workers"])) or "none"
            raise ClusterError(f"{client.scheduler.address}: no worker {exc.args[0]!r} (workers: {known})") from None
        # graceful: the scheduler copies the data only this worker holds, lets it hand back or finish its
        # tasks, then closes it and its nanny (which would otherwise restart it)
        retired = client.retire_workers(workers=addresses, close_workers=True, remove=True)
    gone = sorted(retired)
    if args.json:
        json.dump({"retired": gone}, sys.stdout, indent=2)
        print()
    else:
        for addr in gone:
            print(f"retired {addr}")
    if set(addresses) - set(gone):
        raise ClusterError(f"not retired (the scheduler refused; its data has nowhere to go?): "
                           f"{', '.join(sorted(set(addresses) - set(gone)))}")
    return 0


def certs(args: argparse.Namespace) -> int:
    from triage.cluster.certs import make_site

    files = make_site(args.directory, args.host, days=args.days)
    if args.json:
        json.dump({k: str(v) for k, v in files.items()}, sys.stdout, indent=2)
        print()
        return 0
    d = args.directory.resolve()
    print(f"wrote a private CA and scheduler, worker and client certificates to {d}/ "
          f"(keep ca-key.pem offline; *-key.pem are mode 0600)")
    print("scheduler: dask scheduler --protocol tls "
          f"--tls-ca-file {d}/ca.pem --tls-cert {d}/scheduler.pem --tls-key {d}/scheduler-key.pem")
    print(f"worker:    dask worker tls://SCHEDULER:8786 --tls-ca-file {d}/ca.pem "
          f"--tls-cert {d}/worker.pem --tls-key {d}/worker-key.pem")
    print(f"triage:    export DASK_TRIAGE__CLUSTER__TLS__CA_FILE={d}/ca.pem "
          f"DASK_TRIAGE__CLUSTER__TLS__CERT={d}/client.pem DASK_TRIAGE__CLUSTER__TLS__KEY={d}/client-key.pem")
    return 0
