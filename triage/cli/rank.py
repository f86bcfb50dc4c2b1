"""``triage rank``: rank an existing result again (other rules, another --since) without the image."""

from __future__ import annotations

import argparse
import json
import sys

from triage.audit import AuditLog
from triage.ranking import parse_since, rerank, resolve
from triage.reports import existing_reports, write_reports

EXAMPLE = """examples:
  triage rank results/laptop                         # the rules in force now (after editing ranking.yaml)
  triage rank results/laptop --rules force-policy.yaml --since 2024-03-01
  triage rank J000042 --json | jq .ranking.tier

Rules come from --rules FILE, else <state dir>/ranking.yaml, else the shipped default;
a file saying 'extends: default' adds to the default rules, 'extends: none' replaces them.
files.parquet and summary.json are rewritten under a temporary name and renamed; reports
already in the folder are written again.

exit codes: 0 done; 2 usage; 3 bad input (no such folder or job, half-written results,
a broken rule file: the message names its line)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rank", help="rank an existing result again (no image needed)",
                       description="Recompute score, tier and reasons of every row of OUT/files.parquet and "
                       "the device ranking in OUT/summary.json, from the rules in force.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="OUT|JOB", help="results folder, or a queue job id (J000042)")
    add_rule_options(p)
    p.add_argument("--home", metavar="DIR", default=None,
                   help="state directory (rule file, hash sets, queue); default $TRIAGE_HOME")
    p.add_argument("--json", action="store_true", help="print each folder's new ranking as JSON")
    p.set_defaults(func=run)


def add_rule_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="FILE", default=None,
                   help="ranking rule file (default: <state dir>/ranking.yaml if present, else the shipped rules)")
    p.add_argument("--since", metavar="DATE", default=None,
                   help="files modified or created on or after DATE (YYYY-MM-DD, UTC) count as recent")


def run(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    target = resolve(args.target, args.home)
    audit = AuditLog.at(args.home)
    audit.check_writable()
    out = []
    for d in target.dirs:
        res = rerank(d, rules=args.rules, since=since, home=args.home)
        formats = existing_reports(d)
        if formats:
            write_reports(d, formats, job=target.job)
        ranking = res.summary["ranking"]
        image = res.summary.get("image", {})
        audit.append("rank", job=target.job.id if target.job else None,
                     case=target.job.case if target.job else None, image=image.get("path"),
                     image_hash=image.get("sha256"),
                     details={"out": str(d), "tier": ranking["tier"], "score": ranking["score"],
                              "rules": ranking["rules"], "reports": formats})
        out.append({"out": str(d), "ranking": ranking})
    if args.json:
        json.dump(out, sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    for item in out:
        print(f"{item['out']}: {device_line(item['ranking'])}")
    return 0


def device_line(ranking: dict | None) -> str:
    """One line for a device's ranking, as `rank`, `results` and `top` print it."""
    if not ranking:
        return "not ranked (results from an older version: run 'triage rank')"
    reasons = "; ".join(ranking.get("reasons", [])) or "nothing stands out"
    return f"device {ranking['tier'].upper()} (score {ranking['score']}): {reasons}"
