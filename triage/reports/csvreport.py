"""CSV: one row per file, every column of files.parquet, spreadsheet formula injection neutralised.

A cell a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return, OWASP's list) gets a leading apostrophe, so
``=HYPERLINK(...)`` in a file name is shown, not followed. Numbers stay numbers:
only text columns are neutralised. Lists are joined with ``; ``; reasons read
``rule +weight: sentence`` as the CLI shows them; times are UTC ISO 8601. Every
column is converted by Arrow a batch at a time; Python only joins the cells.
"""

from __future__ import annotations

import csv
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from triage.reports import WRITERS, Context

_DANGER = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    return "'" + text if text.startswith(_DANGER) else text


@WRITERS.register("csv")
class CsvReport:
    NAME = "csv"
    FILENAME = "report.csv"
    DESCRIPTION = "one row per file, every column plus score, tier and reasons (UTF-8, header row)"
    TEXT = True

    def write(self, ctx: Context, fh: IO[str]) -> None:
        out = csv.writer(fh, lineterminator="\r\n")
        header = False
        for batch in ctx.batches():
            if not header:
                out.writerow(batch.schema.names)
                header = True
            out.writerows(zip(*(_cells(col).to_pylist() for col in batch.columns)))
        if not header:
            out.writerow(pq.read_schema(ctx.results.files_path).names)


def _cells(col: pa.Array) -> pa.Array:
    """One column as the CSV shows it, computed by Arrow for the whole batch (nulls stay null: empty cells)."""
    t = col.type
    if pa.types.is_boolean(t):
        return pc.if_else(col, "true", "false")
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return col
    if pa.types.is_list(t) and pa.types.is_struct(t.value_type):  # reasons: 'rule +w: sentence; ...'
        flat = col.flatten()
        weight = flat.field("weight")
        signed = pc.if_else(pc.greater_equal(weight, 0), pc.binary_join_element_wise("+", pc.cast(weight, pa.string()), ""),
                            pc.cast(weight, pa.string()))
        text = pc.binary_join_element_wise(flat.field("rule"), " ", signed, ": ", flat.field("reason"), "")
        col = pc.binary_join(pa.ListArray.from_arrays(col.offsets, text, mask=col.is_null()), "; ")
    elif pa.types.is_list(t):
        col = pc.binary_join(pc.cast(col, pa.list_(pa.string())), "; ")
    elif not pa.types.is_string(t):
        col = pc.cast(col, pa.string())
    danger = pc.match_substring_regex(col, "^[=+\\-@\t\r]")
    return pc.if_else(danger, pc.binary_join_element_wise("'", col, ""), col)
