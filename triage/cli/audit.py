"""``triage audit``: check and read the chain-of-custody log.

``triage audit verify`` exits 0 and prints "audit log OK: N records" when every record
is intact and in place; otherwise it prints one line per problem (line number, seq,
what is wrong) and exits 7.
"""

from __future__ import annotations

import argparse

from triage.audit import EXIT_TAMPERED, AuditLog, read, verify
from triage.cli.jobs import add_home, add_json, print_json
from triage.queue import job_id, parse_job_id

EXAMPLE = """examples:
  triage audit verify
  triage audit show --case OP-2291
  triage audit show --job J000042 --json

Every submit, start, finish, failure, cancel, retry and priority change is one record,
chained to the one before by its sha256, so an edited, removed, inserted or reordered
record is found by 'verify'.

exit codes: 0 done (verify: the log is intact); 2 usage; 7 verify found the log edited,
truncated or reordered (one line per problem on stdout)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="verify or show the chain-of-custody audit log",
                       description="The append-only audit log of every action on jobs, hash-chained.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    v = actions.add_parser("verify", help="check the whole chain", epilog=EXAMPLE,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_home(v)
    add_json(v, "the result")
    v.set_defaults(func=run_verify)
    s = actions.add_parser("show", help="print records", epilog=EXAMPLE,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--job", default=None, help="only records about this job id")
    s.add_argument("--case", default=None, help="only records about this case")
    add_home(s)
    add_json(s, "the records")
    s.set_defaults(func=run_show)


def run_verify(args: argparse.Namespace) -> int:
    log = AuditLog.at(args.home)
    problems = verify(log.path)
    count = sum(1 for _ in log.records())
    if args.json:
        print_json({"path": str(log.path), "ok": not problems, "records": count,
                    "problems": [{"line": p.line, "seq": p.seq, "message": p.message} for p in problems]})
    elif problems:
        for p in problems:
            print(f"{log.path}: {p}")
    else:
        print(f"audit log OK: {count} records")
    return EXIT_TAMPERED if problems else 0


def run_show(args: argparse.Namespace) -> int:
    job = args.job
    if job is not None:
        seq = parse_job_id(job)
        job = job_id(seq) if seq is not None else job
    records = read(AuditLog.at(args.home).path, job=job, case=args.case)
    if args.json:
        print_json(records)
        return 0
    for r in records:
        image = r.get("image")
        image = ", ".join(image) if isinstance(image, list) else image
        details = " ".join(f"{k}={v}" for k, v in sorted((r.get("details") or {}).items()) if v is not None)
        print(f"{r.get('seq')}  {r.get('time')}  {r.get('user')}@{r.get('host')}  {r.get('action')}  "
              f"{r.get('job') or '-'}  {r.get('case') or '-'}  {image or '-'}  {details}".rstrip())
    return 0
