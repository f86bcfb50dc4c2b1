"""Finishing a run: merge the task results, list the problems, choose the exit code, write
the results and the summary, and commit them durably.

Exit codes (README "Exit codes"): 0 everything was read; 4 triaged, but a partition,
allocated files, a byte range to carve or the image hash could not be (fully) read;
6 an E01's stored hash does not match its content (this wins over 4).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from triage import __version__, archiveplan
from triage.merge import allocated_problems, counts, dedupe_carved, files_table, merge_partition, volumes_table
from triage.ranking import rank_result
from triage.store import write_json, write_parquet

if TYPE_CHECKING:
    from triage.runstate import ImageRun

EXIT_OK, EXIT_PROBLEMS, EXIT_EWF_MISMATCH = 0, 4, 6
MAX_FILE_PROBLEMS = 20  # allocated files listed one by one; the rest are counted


@dataclass
class RunResult:
    image: str
    out: Path
    exit_code: int
    problems: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def finalize(run: ImageRun) -> RunResult:
    """Write the run's results into its output directory; ``summary.json`` last."""
    assert run.finished and run.parts is not None and run.media is not None
    tables = [merge_partition(run.walks[i], run.contents[i], run.task_errors[i]) for i in sorted(run.walks)]
    carved = None
    if run.carved:
        carved = dedupe_carved(pa.concat_tables(run.carved), tables, run.owner())
        for r in run.knownbad.hits(carved):  # final only now: merged-away objects are not hits
            run.hit(r["partition"], r["path"], r)
        tables.append(carved)
    tables += archiveplan.fold(run, tables, carved)  # archive members; archives' own statuses set
    files = files_table(tables)
    _keep_extracted(run, files)
    files, ranking = rank_result(files, home=run.home, now=run.started,  # score, tier, reasons per row
                                 volumes={i: w.status for i, w in run.walks.items()})  # locked encrypted ones count
    write_parquet(files, run.staging.path("files.parquet"))
    write_parquet(volumes_table(run.parts, run.walks, files), run.staging.path("volumes.parquet"))
    image_info = _image_info(run)
    write_json(image_info, run.staging.path("image.json"))
    problems, exit_code = _problems(run, files)
    file_counts = counts(files, run.knownbad.count(files))
    summary = {
        "tool": f"evidence-triage {__version__}",
        "image": image_info,
        "partitions": len(run.parts),
        "filesystems": {str(i): w.filesystem for i, w in sorted(run.walks.items())},
        "files": file_counts,
        "known_bad_hits": file_counts["known_bad"],  # triage.knownbad: exact hashes + near-duplicates
        "problems": problems,
        "ranking": ranking,  # the device's score, tier and reasons (triage.ranking)
        "exit_code": exit_code,
        "started": run.started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - run.t0, 3),
        "resumed_bytes": run.resumed_bytes,  # bytes whose results came from an earlier attempt's checkpoints
    }
    run.staging.commit(summary)
    run.ck.close(remove=True)  # committed: the checkpoints are done with
    return RunResult(run.ref.path, run.staging.out, exit_code, problems, summary)


def _keep_extracted(run: ImageRun, files: pa.Table) -> None:
    """Extracted carved objects merged away (duplicates of allocated files) are deleted."""
    if not run.extract_dir or not Path(run.extract_dir).is_dir():
        return
    kept = {p.removeprefix("$Carved/") for p in files.column("path").to_pylist() if p.startswith("$Carved/")}
    for extracted in Path(run.extract_dir).iterdir():
        if extracted.name not in kept:
            extracted.unlink()
    Path(run.extract_dir).rename(run.staging.path("carved"))


def _image_info(run: ImageRun) -> dict[str, Any]:
    ref, media = run.ref, run.media
    assert media is not None
    return {
        "path": ref.path, "format": ref.format, "segments": list(ref.segments), "size": ref.size,
        "md5": media.md5, "sha256": media.sha256,
        "ewf": None if ref.format != "ewf" else {
            "stored_md5": media.ewf_stored_md5, "stored_sha1": media.ewf_stored_sha1,
            "verified": media.ewf_verified},
        "error": media.error,
        "containers": run.containers,  # path, size, md5, sha256 of each container file; [] when they are the media
    }


def _problems(run: ImageRun, files: pa.Table) -> tuple[list[str], int]:
    """One line per problem, as the examiner sees it, and the exit code they make."""
    path, media = run.ref.path, run.media
    assert media is not None
    problems = [f"{path}: partition {i} (byte {run.vols[i].offset}): {w.status}"
                for i, w in sorted(run.walks.items()) if w.status != "ok"]
    bad = allocated_problems(files)
    problems += [f"{path}: partition {r['partition']}: {r['path']}: {r['status']}" for r in bad[:MAX_FILE_PROBLEMS]]
    if len(bad) > MAX_FILE_PROBLEMS:
        problems.append(f"{path}: ... and {len(bad) - MAX_FILE_PROBLEMS} more allocated files not fully read")
    if media.error:
        problems.append(f"{path}: {media.error}")
    problems += [f"{path}: {p}" for p in run.problems]
    exit_code = EXIT_PROBLEMS if problems else EXIT_OK
    if media.ewf_verified is False:
        problems.insert(0, f"{path}: E01 INTEGRITY FAILURE: stored MD5 {media.ewf_stored_md5} "
                           f"!= computed MD5 {media.md5}")
        exit_code = EXIT_EWF_MISMATCH
    return problems, exit_code
