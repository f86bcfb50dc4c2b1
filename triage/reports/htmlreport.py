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
from collections.abc import Callable, Iterator
from typing import IO, Any

import jinja2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
        ranks = ctx.results.files(["score", "tier"])
        picked = order(ranks)[:TOP_N]
        tiers = ranks.column("tier").to_pylist()
        del ranks
        data = {
            "tool": ctx.tool, "image": ctx.results.image(), "ranking": ctx.ranking, "summary": ctx.summary,
            "files": ctx.summary.get("files", {}), "problems": ctx.summary.get("problems", []),
            "volumes": ctx.results.volumes().to_pylist(), "tiers": TIERS,
            "tier_counts": {t: tiers.count(t) for t in TIERS}, "top": _top(ctx, picked),
            "known": _rows(ctx, lambda b: pc.is_in(b.column("known"), value_set=pa.array(["known-bad", "notable"]))),
            "near": _rows(ctx, lambda b: pc.is_valid(b.column("phash_match"))),
            "case": ctx.case_name, "exhibit": ctx.exhibit, "examiner": ctx.examiner,
            "command": shlex.join(ctx.command),
        }
        for chunk in environment().get_template("report.html").generate(**data):
            fh.write(chunk)


def _top(ctx: Context, picked: np.ndarray) -> list[dict[str, Any]]:
    """The rows at ``picked`` (in that order), taken batch by batch: only they become Python objects."""
    where = {int(row): k for k, row in enumerate(picked)}
    out: list[dict[str, Any]] = [{} for _ in picked]
    start = 0
    for batch in ctx.batches(LIST_COLUMNS):
        local = [r - start for r in where if start <= r < start + batch.num_rows]
        for r, row in zip(local, batch.take(pa.array(local, pa.int64())).to_pylist()):
            out[where[r + start]] = row
        start += batch.num_rows
    return out


def _rows(ctx: Context, keep: Callable[[pa.RecordBatch], pa.Array]) -> Iterator[dict[str, Any]]:
    """Rows a batch-level test keeps, at most LIST_MAX; lazily, as the template reaches the list."""
    n = 0
    for batch in ctx.batches(LIST_COLUMNS):
        for row in batch.filter(pc.fill_null(keep(batch), False)).to_pylist():
            n += 1
            if n > LIST_MAX:
                return
            yield row
