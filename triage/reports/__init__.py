"""Reports: a results folder written out in forms people and other systems read (HTML, CSV, DFXML, CASE/UCO).

One registry of writers, one module each (``htmlreport``, ``csvreport``, ``dfxml``,
``caseuco``), like the carvers. Every writer streams the files table in record
batches, so a device of a million files needs no more memory than one of a
thousand, and writes under a hidden temporary name in the destination folder that
is renamed into place when complete: a report that exists is a whole report. The
file names are fixed (``report.html`` ...): nothing taken from the evidence ever
becomes a path, so nothing in a report can land outside its folder.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from triage import __version__
from triage.ranking import Results, open_results
from triage.rules.errors import InputError, ResultsError
from triage.rules.registry import Registry

#: report writers by format name; modules in this package register themselves
WRITERS: Registry[Any] = Registry("report format", package="triage.reports")
BATCH_ROWS = 4096


#: options whose value is a secret: shown as REDACTED wherever a command line is recorded
SECRET_OPTIONS = ("--key",)


def redacted(argv: list[str]) -> list[str]:
    """The command line with every secret value (``--key 3=passphrase:...``) replaced: keys never reach a report."""
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append("REDACTED")
            hide = False
        elif arg in SECRET_OPTIONS:
            out.append(arg)
            hide = True
        elif arg.startswith(tuple(f"{o}=" for o in SECRET_OPTIONS)):
            out.append(arg.split("=", 1)[0] + "=REDACTED")
        else:
            out.append(arg)
    return out


@dataclass
class Context:
    """What every writer may use besides the tables: the job (case, exhibit, examiner) and provenance."""

    results: Results
    job: Any = None                         # triage.queue.Job, when the results belong to a queued job
    case: str | None = None                 # `triage run --case`, when there is no job
    command: list[str] = field(default_factory=lambda: redacted(sys.argv))
    tool: str = f"evidence-triage {__version__}"

    @property
    def summary(self) -> dict[str, Any]:
        return self.results.summary

    @property
    def ranking(self) -> dict[str, Any]:
        return self.summary.get("ranking") or {}

    @property
    def case_name(self) -> str | None:
        return self.job.case if self.job is not None else self.case

    @property
    def exhibit(self) -> str | None:
        return self.job.exhibit if self.job is not None else None

    @property
    def examiner(self) -> str | None:
        return getattr(self.job, "examiner", None) if self.job is not None else None

    def batches(self, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """files.parquet in table order, a bounded batch at a time."""
        pf = pq.ParquetFile(self.results.files_path)
        names = pf.schema_arrow.names
        cols = [c for c in columns if c in names] if columns is not None else None
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
            # times as ISO 8601 text, formatted by Arrow for the whole batch: exact to the ns (datetime
            # stops at microseconds) and much cheaper than one strftime per cell
            arrays = [_iso_array(a) if pa.types.is_timestamp(a.type) else a for a in batch.columns]
            yield pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    def rows(self, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
        for batch in self.batches(columns):
            yield from batch.to_pylist()


def formats_arg(text: str) -> list[str]:
    """``html,csv`` -> ['html', 'csv']; an unknown name lists the known ones."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    for n in names:
        WRITERS.get(n)
    return list(dict.fromkeys(names))


def write_reports(out: str | Path, formats: list[str], *, dest: str | Path | None = None, job: Any = None,
                  case: str | None = None) -> list[Path]:
    """Write each format of the results in ``out`` into ``dest`` (default ``out``); returns the files."""
    results = open_results(out)
    target = Path(dest) if dest is not None else results.dir
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{target}: cannot create the report folder: {exc.strerror}") from exc
    ctx = Context(results, job=job, case=case)
    written = []
    for name in formats:
        writer = WRITERS.get(name)()
        final = target / writer.FILENAME
        tmp = target / f".{writer.FILENAME}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w" if writer.TEXT else "wb", **({"encoding": "utf-8", "newline": ""}
                                                           if writer.TEXT else {})) as fh:
                writer.write(ctx, fh)
            os.replace(tmp, final)
        except OSError as exc:
            raise ResultsError(f"{final}: cannot write the {name} report: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        written.append(final)
    return written


def existing_reports(out: str | Path) -> list[str]:
    """The formats whose report is already in ``out`` (so re-ranking can rewrite them)."""
    return [name for name, cls in WRITERS.items() if (Path(out) / cls.FILENAME).is_file()]


def _iso_array(times: pa.Array) -> pa.Array:
    """UTC ISO 8601 with 'Z', sub-second digits only when there are some (as :func:`iso`)."""
    utc = times.cast(pa.timestamp(times.type.unit, tz="UTC"))
    text = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S")
    text = pc.replace_substring_regex(pc.replace_substring_regex(text, r"(\.\d*?)0+$", r"\1"), r"\.$", "")
    return pc.binary_join_element_wise(text, pa.scalar("Z"), "")


def iso(ns: int | str | None) -> str | None:
    """Integer ns since the epoch as UTC ISO 8601 with 'Z', sub-second digits only when there are some."""
    if ns is None or isinstance(ns, str):
        return ns
    sec, frac = divmod(int(ns), 10**9)
    text = (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:09d}".rstrip("0") + "Z" if frac else text + "Z"


__all__ = ["IO", "WRITERS", "Context", "existing_reports", "formats_arg", "iso", "write_reports"]
