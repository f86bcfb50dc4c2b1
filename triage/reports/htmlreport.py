"""HTML: one self-contained page an examiner or a non-specialist can read offline.

Jinja2 with autoescaping on, so every name from the evidence is text, never
markup (``<script>alert(1)<`` shows as those characters); a Content-Security-Policy
forbids scripts and every external load besides. No picture is ever embedded:
known-bad items and near-duplicates appear as paths, hashes and reasons only.
The page is rendered with ``generate()``, chunk by chunk, and the long lists
(known-item hits, near-duplicates) are generators over the table's batches.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import IO, Any

import jinja2

from triage.reports import WRITERS, Context
from triage.rules.ranking import order
from triage.rules.rulefile import TIERS

TOP_N = 100
LIST_MAX = 5000  # known-item hits and near-duplicates listed at most (all of them are in the CSV)
LIST_COLUMNS = ["partition", "path", "size", "mime", "md5", "sha256", "known", "hashset_hits", "phash_match",
                "phash_distance", "score", "tier", "reasons"]


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("triage.reports", "templates"),
                              autoescape=True, undefined=jinja2.ChainableUndefined)


@WRITERS.register("html")
class HtmlReport:
    NAME = "html"
    FILENAME = "report.html"
    DESCRIPTION = "self-contained HTML page: device at a glance, top items with reasons, hits, problems, provenance"
    TEXT = True

    def write(self, ctx: Context, fh: IO[str]) -> None:
        table = ctx.results.files(LIST_COLUMNS)
        picked = order(table)[:TOP_N]
        top = table.take(picked).to_pylist()
        tiers = table.column("tier").to_pylist()
        del table
        data = {
            "tool": ctx.tool, "image": ctx.results.image(), "ranking": ctx.ranking, "summary": ctx.summary,
            "files": ctx.summary.get("files", {}), "problems": ctx.summary.get("problems", []),
            "volumes": ctx.results.volumes().to_pylist(), "tiers": TIERS,
            "tier_counts": {t: tiers.count(t) for t in TIERS}, "top": top,
            "known": _rows(ctx, lambda r: r["known"] in ("known-bad", "notable")),
            "near": _rows(ctx, lambda r: r["phash_match"] is not None),
            "case": ctx.case_name, "exhibit": ctx.exhibit, "examiner": ctx.examiner,
            "command": shlex.join(ctx.command),
        }
        for chunk in environment().get_template("report.html").generate(**data):
            fh.write(chunk)


def _rows(ctx: Context, keep: Any) -> Iterator[dict[str, Any]]:
    n = 0
    for row in ctx.rows(LIST_COLUMNS):
        if keep(row):
            n += 1
            if n > LIST_MAX:
                return
            yield row
