"""``triage results``: where a finished job's results are, and its summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from triage.cli.jobs import EXIT_CODES, add_home, add_json, open_audit, open_queue, print_json, progress_text
from triage.cli.rank import device_line
from triage.queue import JobStateError
from triage.rules.errors import InputError

EXAMPLE = f"""examples:
  triage results J000042
  triage results J000042 --json | jq '.results[0].parquet["files.parquet"]'

Prints each image's summary.json headline and the paths of its Parquet tables.

{EXIT_CODES}"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="show a finished job's summary and result files",
                       description="Show the summary.json of a finished job and the paths of its Parquet files.",
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("job", metavar="JOB", help="job id (J000042)")
    add_home(p)
    add_json(p, "the summary and paths")
    p.set_defaults(func=run)


def collect(results_dir: Path) -> list[dict[str, Any]]:
    """Each complete result directory: the job's own, or one per image below it."""
    dirs = [results_dir] if (results_dir / "summary.json").is_file() else \
        sorted(d for d in results_dir.iterdir() if (d / "summary.json").is_file())
    out = []
    for d in dirs:
        try:
            summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{d / 'summary.json'}: cannot be read: {exc}") from exc
        out.append({"dir": str(d), "summary": summary,
                    "parquet": {p.name: str(p) for p in sorted(d.glob("*.parquet"))}})
    return out


def run(args: argparse.Namespace) -> int:
    job = open_queue(args).get(args.job)
    if job.state in ("queued", "running"):
        raise JobStateError(f"{job.id}: is {job.state} ({progress_text(job)}); results come when it is done")
    if job.state != "done":
        why = f": {job.failure}" if job.failure else ""
        raise JobStateError(f"{job.id}: {job.state}{why}; no results (see 'triage retry')")
    rdir = Path(job.results_dir or "")
    if not job.results_dir or not rdir.is_dir():
        raise InputError(f"{rdir}: results directory of {job.id} is missing")
    results = collect(rdir)
    if not results:
        raise InputError(f"{rdir}: no summary.json; the results of {job.id} are incomplete")
    open_audit(args).append_job("view-results", job, details={"results_dir": str(rdir)})
    if args.json:
        print_json({"job": job.id, "case": job.case, "exhibit": job.exhibit, "state": job.state,
                    "known_bad_hits": job.known_bad_hits, "results_dir": str(rdir), "results": results})
        return 0
    print(f"{job.id}  case {job.case}  exhibit {job.exhibit}  known-bad hits {job.known_bad_hits}")
    for r in results:
        s = r["summary"]
        files = s.get("files", {})
        print(f"  {s.get('image', {}).get('path', r['dir'])}: {files.get('entries', '?')} entries, "
              f"{files.get('hashed', '?')} hashed, exit code {s.get('exit_code', '?')}")
        print(f"    {device_line(s.get('ranking'))}  (triage top {job.id})")
        for p in s.get("problems", []):
            print(f"    ! {p}")
        for name, path in r["parquet"].items():
            print(f"    {name}: {path}")
        for report in sorted(Path(r["dir"]).glob("report.*")):
            print(f"    {report.name}: {report}")
        print(f"    summary.json: {Path(r['dir']) / 'summary.json'}")
    return 0
