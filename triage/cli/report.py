"""``triage report``: write a result's reports (HTML, CSV, DFXML, CASE/UCO) on demand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from triage.audit import AuditLog
from triage.ranking import resolve
from triage.reports import WRITERS, formats_arg, write_reports

EXAMPLE = """examples:
  triage report results/laptop                               # all four, into the results folder
  triage report J000042 --format html,csv -o /cases/OP-ROSE/reports
  triage report results/laptop --format dfxml,case --json

Files: report.html (self-contained, works offline), report.csv (one row per file),
report.dfxml (valid DFXML), report.case.jsonld (CASE/UCO 1.5). Each is written under a
temporary name and renamed. With several images under OUT, -o DIR gets one folder per image.

exit codes: 0 done; 2 usage; 3 bad input (no such folder or job, half-written results,
results from an older version: run 'triage rank' first, unknown format)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write HTML, CSV, DFXML and CASE/UCO reports of a result",
                       description="Write reports of a finished result: " + "; ".join(
                           f"{n}: {WRITERS.get(n).DESCRIPTION}" for n in WRITERS.names()),
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="OUT|JOB", help="results folder, or a queue job id (J000042)")
    p.add_argument("--format", dest="formats", type=formats_arg, default=None, metavar="FMT[,FMT]",
                   help=f"formats to write (default: all of {', '.join(WRITERS.names())})")
    p.add_argument("-o", "--out", type=Path, default=None, metavar="DIR",
                   help="folder to write into (default: the results folder)")
    p.add_argument("--home", metavar="DIR", default=None, help="state directory holding the queue (for JOB)")
    p.add_argument("--json", action="store_true", help="print the written files as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    formats = args.formats or [name for name, _ in WRITERS.items()]
    target = resolve(args.target, args.home)
    audit = AuditLog.at(args.home)
    audit.check_writable()
    written = []
    for d in target.dirs:
        dest = args.out
        if dest is not None and len(target.dirs) > 1:
            dest = dest / d.name
        files = write_reports(d, formats, dest=dest, job=target.job)
        audit.append("report", job=target.job.id if target.job else None,
                     case=target.job.case if target.job else None, image=str(d),
                     details={"formats": formats, "files": [str(f) for f in files]})
        written.append({"out": str(d), "reports": [str(f) for f in files]})
    if args.json:
        json.dump(written, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        for item in written:
            for f in item["reports"]:
                print(f)
    return 0
