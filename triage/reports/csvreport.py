"""CSV: one row per file, every column of files.parquet, spreadsheet formula injection neutralised.

A cell a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or carriage return, OWASP's list) gets a leading apostrophe, so
``=HYPERLINK(...)`` in a file name is shown, not followed. Numbers stay numbers:
only text columns are neutralised. Lists are joined with ``; ``; reasons read
``rule +weight: sentence`` as the CLI shows them; times are UTC ISO 8601.
"""

from __future__ import annotations

import csv
from typing import IO, Any

import pyarrow.parquet as pq

from triage.reports import WRITERS, Context, iso
from triage.rules.ranking import reasons_text

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
        schema = pq.read_schema(ctx.results.files_path)
        names = schema.names
        kinds = {f.name: str(f.type) for f in schema}
        out = csv.writer(fh, lineterminator="\r\n")
        out.writerow(names)
        for batch in ctx.batches():
            cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for row in zip(*cols):
                out.writerow([_cell(name, kinds[name], v) for name, v in zip(names, row)])


def _cell(name: str, kind: str, value: Any) -> Any:
    if value is None:
        return ""
    if name == "reasons":
        return neutralise(reasons_text(value))
    if kind.startswith("timestamp"):
        return iso(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, list):
        return neutralise("; ".join(str(v) for v in value))
    return neutralise(str(value))
