"""``triage top``: the highest-ranked items of a result, with the arithmetic behind each score."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from triage.audit import AuditLog
from triage.cli.rank import device_line
from triage.ranking import open_results, resolve
from triage.rules.errors import InputError
from triage.rules.ranking import order, reasons_text
from triage.rules.rulefile import TIERS

EXAMPLE = """examples:
  triage top results/laptop
  triage top J000042 -n 20 --tier notable,likely-notable
  triage top results/laptop --json | jq '.[0].items[] | {path, score, reasons}'

Known-bad and near-duplicate pictures are never shown as pictures: path, hashes and reasons only.

exit codes: 0 done; 2 usage; 3 bad input (no such folder or job, half-written results,
or results from an older version: run 'triage rank' first)."""

COLUMNS = ["partition", "path", "size", "mime", "source", "tier", "score", "reasons", "md5", "sha256", "known",
           "hashset_hits", "phash_match", "phash_distance"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("top", help="show the highest-ranked items of a result",
                       description="Print the top-ranked files of a results folder or a finished job: path, "
                       "partition, size, type, tier, score and the reasons that add up to the score.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="OUT|JOB", help="results folder, or a queue job id (J000042)")
    p.add_argument("-n", type=int, default=50, metavar="N", help="how many items (default 50)")
    p.add_argument("--tier", default=None, metavar="TIER[,TIER]",
                   help=f"only these tiers ({', '.join(TIERS)})")
    p.add_argument("--home", metavar="DIR", default=None, help="state directory holding the queue (for JOB)")
    p.add_argument("--json", action="store_true", help="print the items as JSON")
    p.set_defaults(func=run)


def top_items(table: pa.Table, n: int, tiers: list[str] | None = None) -> list[dict[str, Any]]:
    """The ``n`` highest-ranked rows (ties in table order), optionally of some tiers only."""
    if tiers:
        table = table.filter(pc.is_in(table.column("tier"), value_set=pa.array(tiers)))
    picked = order(table)[: max(n, 0)]
    return table.take(pa.array(picked, pa.int64())).to_pylist()


def run(args: argparse.Namespace) -> int:
    tiers = [t.strip() for t in args.tier.split(",")] if args.tier else None
    for t in tiers or []:
        if t not in TIERS:
            raise InputError(f"--tier {t!r}: unknown tier; known: {', '.join(TIERS)}")
    target = resolve(args.target, args.home)
    out = []
    for d in target.dirs:
        res = open_results(d)
        items = top_items(res.files(COLUMNS), args.n, tiers)
        out.append({"out": str(d), "ranking": res.summary.get("ranking"), "items": items})
    if target.job is not None:
        AuditLog.at(args.home).append_job("view-results", target.job, details={"verb": "top", "n": args.n})
    if args.json:
        json.dump(out, sys.stdout, indent=2, sort_keys=True, default=str)
        print()
        return 0
    for block in out:
        print(f"{block['out']}: {device_line(block['ranking'])}")
        for i, row in enumerate(block["items"], 1):
            print(f"{i:>4}. {row['score']:>3} {row['tier']:<14} p{row['partition']}  {row['size']:>12,}  "
                  f"{row['mime'] or '-'}  {safe(row['path'])}")
            if row["known"] == "known-bad" or row["phash_match"]:  # examiner welfare: hashes, never the picture
                print(f"        md5 {row['md5'] or '-'}  sha256 {row['sha256'] or '-'}")
            print(f"        {safe(reasons_text(row['reasons']))}")
    return 0


def safe(text: str) -> str:
    """No terminal control characters or bidi overrides from evidence names."""
    return "".join(c if c.isprintable() and c not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
                   else c.encode("unicode_escape").decode("ascii") for c in text)
