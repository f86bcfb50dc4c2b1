"""Build and run the triage graph of one device image.

image → partitions → one metadata walk per filesystem → content tasks of bounded
bytes (planned as each walk finishes) → merge on the client → Parquet. The
whole-image hash runs as one long task beside all of it. Only descriptions
(paths, offsets, inode lists) go through the scheduler; results come back as
small Arrow batches. The same code drives a LocalCluster or a remote scheduler.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from triage import __version__, config
from triage.plan import plan_batches
from triage.rules.errors import TriageError
from triage.store import Staging, write_json, write_parquet
from triage.workers.content import CONTENT_SCHEMA, read_content
from triage.workers.image import identify
from triage.workers.media import MediaDigest, hash_media
from triage.workers.refs import ContentOptions, ImageRef, VolumeRef
from triage.workers.schema import FILES_SCHEMA, VOLUMES_SCHEMA
from triage.workers.volumes import Partition, list_partitions
from triage.workers.walk import WalkResult, walk_filesystem

log = logging.getLogger(__name__)

PRIORITY_MEDIA, PRIORITY_VOLUMES, PRIORITY_WALK, PRIORITY_BIG = 100, 90, 80, 10
EXIT_OK, EXIT_PROBLEMS, EXIT_EWF_MISMATCH = 0, 4, 6


@dataclass
class RunResult:
    image: str
    out: Path
    exit_code: int
    problems: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def content_options() -> tuple[ContentOptions, int, int]:
    opts = ContentOptions(
        chunk_bytes=config.get_bytes("content.chunk-bytes"),
        magic_bytes=config.get_bytes("content.magic-bytes"),
        max_image_bytes=config.get_bytes("content.max-image-bytes"),
        max_image_pixels=int(config.get("content.max-image-pixels")),
    )
    return opts, config.get_bytes("content.batch-bytes"), int(config.get("content.batch-files"))


class _Progress:
    """A bytes progress bar on stderr, only when asked for and stderr is a terminal."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=label, leave=False)

    def grow(self, n: int) -> None:
        if self.bar is not None:
            self.bar.total += n
            self.bar.refresh()

    def done(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _merge_partition(walk: WalkResult, contents: list[pa.RecordBatch], task_errors: dict[int, str]) -> pa.Table:
    n = walk.table.num_rows
    cols: dict[str, list] = {k: [None] * n for k in ("md5", "sha1", "sha256", "mime", "magic", "ext_mismatch", "phash")}
    status = walk.table.column("status").to_pylist()
    types = walk.table.column("type").to_pylist()
    for i, t in enumerate(types):
        if status[i] == "ok" and t.endswith("/-") and t[0] in "r-":
            status[i] = "no content: deleted name with no metadata left"
    for batch in contents:
        d = batch.to_pydict()
        for j, row in enumerate(d["row"]):
            for k in cols:
                cols[k][row] = d[k][j]
            status[row] = d["status"][j] if status[row] == "ok" else f"{status[row]}; {d['status'][j]}"
    for row, why in task_errors.items():
        status[row] = f"unreadable: {why}"
    arrays = []
    for f in FILES_SCHEMA:
        if f.name in cols:
            arrays.append(pa.array(cols[f.name], type=f.type))
        elif f.name == "status":
            arrays.append(pa.array(status, type=f.type))
        else:
            arrays.append(walk.table.column(f.name))
    return pa.Table.from_arrays(arrays, schema=FILES_SCHEMA)


def _volumes_table(parts: list[Partition], walks: dict[int, WalkResult]) -> pa.Table:
    rows = []
    for p in parts:
        w = walks.get(p.index)
        if p.flags == "alloc":
            status = w.status if w is not None else "not walked"
        else:
            status = "not walked (unallocated space)" if p.flags == "unalloc" else "not walked (volume system metadata)"
        rows.append({
            "index": p.index, "slot": p.slot, "start": p.start, "length": p.length, "flags": p.flags,
            "description": p.description, "volume_system": p.volume_system,
            "filesystem": w.filesystem if w is not None else None,
            "files": w.table.num_rows if w is not None else 0, "status": status,
        })
    return pa.Table.from_pylist(rows, schema=VOLUMES_SCHEMA)


def _count(table: pa.Table) -> dict[str, int]:
    src = table.column("source").to_pylist()
    status = table.column("status").to_pylist()
    hashed = [h is not None for h in table.column("sha256").to_pylist()]
    sizes = table.column("size").to_pylist()
    return {
        "entries": table.num_rows,
        "allocated": src.count("allocated"),
        "deleted": src.count("deleted"),
        "orphan": src.count("orphan"),
        "hashed": sum(hashed),
        "hashed_bytes": sum(s for s, h in zip(sizes, hashed) if h),
        "unreadable": sum(1 for s in status if s.startswith(("unreadable", "partial"))),
        "images_phashed": sum(1 for p in table.column("phash").to_pylist() if p),
        "ext_mismatch": sum(1 for m in table.column("ext_mismatch").to_pylist() if m),
    }


def run_image(
    image: str | Path,
    out: str | Path,
    client: "distributed.Client",  # noqa: F821
    overwrite: bool = False,
    progress: bool = False,
    notify: Callable[[str], None] | None = None,
) -> RunResult:
    """Triage one image into ``out``. Raises ImageError when the image cannot be used at all."""
    from distributed import as_completed

    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    ref: ImageRef = identify(image)
    staging = Staging(Path(out), overwrite=overwrite, evidence=ref.segments)
    bar = _Progress(progress, Path(ref.path).name)
    try:
        opts, batch_bytes, batch_files = content_options()
        media_f = client.submit(hash_media, ref, priority=PRIORITY_MEDIA)
        parts: list[Partition] = client.submit(list_partitions, ref, priority=PRIORITY_VOLUMES).result()
        bar.grow(ref.size)
        vols = {p.index: VolumeRef(ref, p.index, p.start, p.length) for p in parts if p.walkable}
        pending = as_completed([media_f])
        kind: dict[Any, tuple[str, Any]] = {media_f.key: ("media", None)}
        for idx, vol in vols.items():
            f = client.submit(walk_filesystem, vol, priority=PRIORITY_WALK)
            kind[f.key] = ("walk", idx)
            pending.add(f)
        walks: dict[int, WalkResult] = {}
        contents: dict[int, list[pa.RecordBatch]] = {i: [] for i in vols}
        task_errors: dict[int, dict[int, str]] = {i: {} for i in vols}
        media: MediaDigest | None = None
        problems: list[str] = []
        for fut in pending:
            what, idx = kind[fut.key]
            if what == "media":
                media = fut.result()
                bar.done(ref.size)
                continue
            if what == "walk":
                try:
                    walk = fut.result()
                except Exception as exc:  # a crashed task must not lose the rest of the device
                    walk = WalkResult(idx, None, f"walk failed: {type(exc).__name__}: {exc}",
                                      pa.RecordBatch.from_pylist([], schema=walk_schema()))
                walks[idx] = walk
                for batch in plan_batches(vols[idx], walk.table, batch_bytes, batch_files, opts):
                    prio = PRIORITY_BIG if batch.nbytes >= batch_bytes else 0
                    cf = client.submit(read_content, batch, priority=prio)
                    kind[cf.key] = ("content", (idx, batch))
                    bar.grow(batch.nbytes)
                    pending.add(cf)
                continue
            pidx, batch = idx
            try:
                contents[pidx].append(fut.result())
            except Exception as exc:
                for it in batch.items:
                    task_errors[pidx][it.row] = f"content task failed: {type(exc).__name__}: {exc}"
            bar.done(batch.nbytes)
        tables = [_merge_partition(walks[i], contents[i], task_errors[i]) for i in sorted(walks)]
        files = pa.concat_tables(tables) if tables else FILES_SCHEMA.empty_table()
        files = files.sort_by([("partition", "ascending"), ("path", "ascending"), ("inode", "ascending"),
                               ("attr_type", "ascending"), ("attr_id", "ascending")])
        volumes = _volumes_table(parts, walks)
        write_parquet(files, staging.path("files.parquet"))
        write_parquet(volumes, staging.path("volumes.parquet"))
        assert media is not None
        image_info = {
            "path": ref.path, "format": ref.format, "segments": list(ref.segments), "size": ref.size,
            "md5": media.md5, "sha256": media.sha256,
            "ewf": None if ref.format != "ewf" else {
                "stored_md5": media.ewf_stored_md5, "stored_sha1": media.ewf_stored_sha1,
                "verified": media.ewf_verified},
            "error": media.error,
        }
        write_json(image_info, staging.path("image.json"))
        exit_code = EXIT_OK
        for i, w in sorted(walks.items()):
            if w.status != "ok":
                problems.append(f"{ref.path}: partition {i} (byte {vols[i].offset}): {w.status}")
        counts = _count(files)
        alloc_bad = [r for r in files.filter(pa.compute.equal(files.column("source"), "allocated"))
                     .select(["partition", "path", "status"]).to_pylist()
                     if r["status"].startswith(("unreadable", "partial"))]
        for r in alloc_bad[:20]:
            problems.append(f"{ref.path}: partition {r['partition']}: {r['path']}: {r['status']}")
        if len(alloc_bad) > 20:
            problems.append(f"{ref.path}: ... and {len(alloc_bad) - 20} more allocated files not fully read")
        if media.error:
            problems.append(f"{ref.path}: {media.error}")
        if problems:
            exit_code = EXIT_PROBLEMS
        if media.ewf_verified is False:
            problems.insert(0, f"{ref.path}: E01 INTEGRITY FAILURE: stored MD5 {media.ewf_stored_md5} "
                               f"!= computed MD5 {media.md5}")
            exit_code = EXIT_EWF_MISMATCH
        summary = {
            "tool": f"evidence-triage {__version__}",
            "image": image_info,
            "partitions": len(parts),
            "filesystems": {str(i): w.filesystem for i, w in sorted(walks.items())},
            "files": counts,
            "problems": problems,
            "exit_code": exit_code,
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        staging.commit(summary)
    except BaseException:
        staging.abort()
        raise
    finally:
        bar.close()
    return RunResult(ref.path, staging.out, exit_code, problems, summary)


def walk_schema() -> pa.Schema:
    from triage.workers.walk import WALK_SCHEMA

    return WALK_SCHEMA
