"""Build and run the triage graph of one device image.

image → partitions → one metadata walk per filesystem → content tasks of bounded
bytes (planned as each walk finishes) → merge → Parquet, with the whole-image
hash as one long task beside all of it. Only descriptions (paths, offsets, inode
lists) go through the scheduler; results come back as small Arrow batches and
are checkpointed per task (:mod:`triage.checkpoint`).

:class:`ImageRun` is a state machine that one event loop drives: ``run_image``
for one image, the dispatcher for a whole backlog on one cluster. Tasks are
submitted in a bounded window with the job's *current* priority, so a change of
priority (or a more urgent job) takes effect at task granularity.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from triage import __version__, config
from triage.carveplan import Owner, chunks, partition_extents
from triage.checkpoint import Checkpoints
from triage.merge import allocated_problems, counts, dedupe_carved, files_table, merge_partition, volumes_table
from triage.plan import plan_batches
from triage.ranking import rank_result
from triage.rules.errors import InputError
from triage.store import Staging, write_json, write_parquet
from triage.workers.carving import carve_chunk
from triage.workers.content import read_content, read_segment
from triage.workers.image import identify
from triage.workers.media import MediaDigest, hash_media
from triage.workers.refs import ContentOptions, ImageRef, KnownRef, Segment, VolumeRef
from triage.workers.volumes import Partition, list_partitions
from triage.workers.walk import WALK_SCHEMA, WalkResult, walk_filesystem

log = logging.getLogger(__name__)

# task priorities within a job; the job's own priority is added on top (x1000)
PRIORITY_MEDIA, PRIORITY_VOLUMES, PRIORITY_WALK, PRIORITY_BIG, PRIORITY_CONTENT, PRIORITY_CARVE = 100, 90, 80, 10, 0, 0
CARVE_MODES = ("none", "unalloc", "all")
EXIT_OK, EXIT_PROBLEMS, EXIT_EWF_MISMATCH = 0, 4, 6


@dataclass
class RunResult:
    image: str
    out: Path
    exit_code: int
    problems: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Task:
    name: str          # checkpoint name, unique within the run
    kind: str          # media | partitions | walk | content
    func: Callable
    arg: Any
    priority: int
    nbytes: int = 0


def content_options() -> tuple[ContentOptions, int, int]:
    opts = ContentOptions(
        chunk_bytes=config.get_bytes("content.chunk-bytes"),
        magic_bytes=config.get_bytes("content.magic-bytes"),
        max_image_bytes=config.get_bytes("content.max-image-bytes"),
        max_image_pixels=int(config.get("content.max-image-pixels")),
    )
    return opts, config.get_bytes("content.batch-bytes"), int(config.get("content.batch-files"))


def split_bytes() -> int:
    """Files larger than this are read by a chain of segment tasks (at least the image-decode bound)."""
    return max(config.get_bytes("content.split-bytes"), config.get_bytes("content.max-image-bytes"))


class Progress:
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


class ImageRun:
    """The triage of one image, advanced by :meth:`fill` and :meth:`on_done` from an event loop."""

    def __init__(self, image: str | Path, out: str | Path, *, workdir: str | Path | None = None,
                 overwrite: bool = False, priority: int = 0, progress: bool = False,
                 carve: str | None = None, extract_carved: bool = False, home: str | Path | None = None,
                 notify: Callable[[str, dict], None] | None = None) -> None:
        self.started = dt.datetime.now(dt.timezone.utc)
        self.t0 = time.perf_counter()
        self.carve = carve or str(config.get("carve.mode"))
        if self.carve not in CARVE_MODES:
            raise InputError(f"carve mode {self.carve!r} unknown; choose one of {', '.join(CARVE_MODES)}")
        self.ref: ImageRef = identify(image)
        self.opts, self.batch_bytes, self.batch_files = content_options()
        self.carve_chunk = config.get_bytes("carve.chunk-bytes")
        self.carve_overlap = config.get_bytes("carve.overlap")
        self.known = known_ref(home)
        self.home = home  # ranking reads the state directory's rule file and hash sets
        self.split_bytes = split_bytes()
        self.staging = Staging(Path(out), overwrite=overwrite, evidence=self.ref.segments)
        plan = {"known": known_state(self.known), "tool": __version__, "image": self.ref.path, "size": self.ref.size,
                "batch_bytes": self.batch_bytes, "batch_files": self.batch_files, "split": self.split_bytes,
                "options": self.opts.__dict__, "carve": self.carve, "carve_chunk": self.carve_chunk,
                "carve_overlap": self.carve_overlap, "extract": extract_carved}
        self.ck = Checkpoints(Path(workdir) if workdir else self.staging.dir / ".work", plan)
        self.extract_dir = str(self.ck.dir / "carved") if extract_carved else None
        self.known_bad = 0
        self.known_sets = None
        if self.known is not None:
            from triage.rules.matcher import KnownItems

            self.known_sets = KnownItems.open(self.known.home).sets()
        self.carved: list[pa.Table] = []
        self.carve_errors: list[str] = []
        self.priority = priority
        self.notify = notify or (lambda event, data: None)
        self.bar = Progress(progress, Path(self.ref.path).name)
        self.todo: deque[_Task] = deque()
        self._submitted = 0
        self.inflight: dict[str, tuple[_Task, Any]] = {}
        self.parts: list[Partition] | None = None
        self.vols: dict[int, VolumeRef] = {}
        self.walks: dict[int, WalkResult] = {}
        self.contents: dict[int, list[pa.Table]] = {}
        self.task_errors: dict[int, dict[int, str]] = {}
        self.media: MediaDigest | None = None
        self.bytes_total = self.bytes_done = 0
        self.files_done = 0
        self._restore()

    # -- planning ----------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Load every checkpoint there is; queue the tasks that have none."""
        self.media = self.ck.load_media()
        if self.media is None:
            self.todo.append(_Task("media", "media", hash_media, self.ref, PRIORITY_MEDIA, self.ref.size))
        self.bytes_total += self.ref.size
        if self.media is not None:
            self.bytes_done += self.ref.size
        parts = self.ck.load_partitions()
        if parts is None:
            self.todo.append(_Task("partitions", "partitions", list_partitions, self.ref, PRIORITY_VOLUMES))
        else:
            self._got_partitions(parts)

    def _plan_carving(self, tag: str, extents: list[tuple[int, int]]) -> None:
        for i, chunk in enumerate(chunks(extents, self.ref, self.carve_chunk, self.carve_overlap, self.opts,
                                         self.extract_dir, self.known)):
            name = f"carve-{tag}-{i:05d}"
            self.bytes_total += chunk.nbytes
            done = self.ck.load_result(name)
            if done is not None:
                self._found(done)
                self.carved.append(done)
                self.bytes_done += chunk.nbytes
                continue
            self.todo.append(_Task(name, "carve", carve_chunk, chunk, PRIORITY_CARVE, chunk.nbytes))
            self.bar.grow(chunk.nbytes)

    def _got_partitions(self, parts: list[Partition]) -> None:
        self.parts = parts
        self.vols = {p.index: VolumeRef(self.ref, p.index, p.start, p.length) for p in parts if p.walkable}
        if self.carve == "all":
            self._plan_carving("all", [(0, self.ref.size)])
        elif self.carve == "unalloc":
            for p in parts:
                if p.flags == "unalloc":
                    self._plan_carving(str(p.index), partition_extents(p, None, self.ref.size))
        for idx, vol in self.vols.items():
            self.contents[idx], self.task_errors[idx] = [], {}
            walk = self.ck.load_walk(idx)
            if walk is None:
                self.todo.append(_Task(f"walk-{idx}", "walk", walk_filesystem, vol, PRIORITY_WALK))
            else:
                self._got_walk(walk)

    def _got_walk(self, walk: WalkResult) -> None:
        idx = walk.partition
        self.walks[idx] = walk
        if self.carve == "unalloc":
            part = next(p for p in self.parts or [] if p.index == idx)
            self._plan_carving(str(idx), partition_extents(part, walk, self.ref.size))
        batches = plan_batches(self.vols[idx], walk.table, self.batch_bytes, self.batch_files, self.opts, self.known,
                               self.split_bytes)
        for i, batch in enumerate(batches):
            name = f"content-{idx}-{i:05d}"
            segmented = isinstance(batch, Segment)
            total = batch.item.size if segmented else batch.nbytes
            self.bytes_total += total
            self.bar.grow(total)
            done = self.ck.load_result(name)
            if done is not None:
                self._found(done, walk)
                self.contents[idx].append(done)
                self.bytes_done += total
                self.files_done += 1 if segmented else len(batch.items)
                continue
            if segmented:
                self.todo.append(_Task(name, "segment", read_segment, batch, PRIORITY_BIG, batch.nbytes))
                continue
            prio = PRIORITY_BIG if batch.nbytes >= self.batch_bytes else PRIORITY_CONTENT
            self.todo.append(_Task(name, "content", read_content, batch, prio, batch.nbytes))

    def _found(self, table: pa.Table, walk: WalkResult | None = None) -> None:
        """Announce known-bad files (exact or near-duplicate) the moment their task is back."""
        if "known" not in table.schema.names:
            return
        cols = table.select([c for c in ("row", "path", "offset", "known", "hashset_hits", "sha256",
                                         "phash_match", "phash_distance") if c in table.schema.names]).to_pylist()
        bad_sets = {n for n, c in (self.known_sets or {}).items() if c == "known-bad"}
        for r in cols:
            near = r["phash_match"] is not None and r["phash_match"].split(":", 1)[0] in bad_sets
            if r["known"] != "known-bad" and not near:
                continue
            self.known_bad += 1
            if walk is not None:
                path = walk.table.column("path")[r["row"]].as_py()
                partition = walk.partition
            else:  # a carved object: its partition is the volume-table entry holding its offset
                path, partition = r["path"], Owner(self.parts or [])(r["offset"])
            self.notify("known-bad", {"image": self.ref.path, "partition": partition, "path": path,
                                      "sha256": r["sha256"], "sets": r["hashset_hits"] or [],
                                      "exact": r["known"] == "known-bad", "phash_match": r["phash_match"],
                                      "phash_distance": r["phash_distance"]})

    # -- driving -------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return not self.todo and not self.inflight and self.parts is not None and len(self.walks) == len(self.vols)

    def fill(self, client: "distributed.Client", limit: int | None = None) -> list[Any]:  # noqa: F821
        """Submit queued tasks, at most ``limit`` in flight, at the job's current priority."""
        new = []
        # highest task priority first: the image hash and walks start before content
        ordered = sorted(self.todo, key=lambda t: -t.priority)
        self.todo = deque(ordered)
        while self.todo and (limit is None or len(self.inflight) < limit):
            task = self.todo.popleft()
            self._submitted += 1  # a segment chain reuses its name: keys must still be unique
            fut = client.submit(task.func, task.arg, priority=self.priority * 1000 + task.priority,
                                key=f"{task.kind}-{self.ref.path}-{task.name}-{id(self)}-{self._submitted}",
                                pure=False)
            self.inflight[fut.key] = (task, fut)
            new.append(fut)
        return new

    def owns(self, fut: Any) -> bool:
        return fut.key in self.inflight

    def on_done(self, fut: Any) -> None:
        task, _ = self.inflight.pop(fut.key)
        try:
            result = fut.result()
        except Exception as exc:  # one crashed task must not lose the rest of the device
            result = exc
        if task.kind == "media":
            if isinstance(result, Exception):
                result = MediaDigest(self.ref.size, "", "", error=f"image hash task failed: {_describe(result)}")
            self.media = result
            self.ck.save_media(result)
            self.bytes_done += task.nbytes
            self.bar.done(task.nbytes)
        elif task.kind == "partitions":
            if isinstance(result, Exception):
                raise result  # no volume system and no filesystem: the image as a whole is unusable
            self.ck.save_partitions(result)
            self._got_partitions(result)
        elif task.kind == "walk":
            vol = task.arg
            if isinstance(result, Exception):
                result = WalkResult(vol.index, None, f"walk failed: {_describe(result)}",
                                    pa.RecordBatch.from_pylist([], schema=WALK_SCHEMA))
            self.ck.save_walk(result)
            self._got_walk(result)
        elif task.kind == "carve":
            if isinstance(result, Exception):
                self.carve_errors.append(f"carving bytes {task.arg.start}-{task.arg.end} failed: {_describe(result)}")
            else:
                table = pa.Table.from_batches([result])
                self.ck.save_result(task.name, table)
                self._found(table)
                self.carved.append(table)
            self.bytes_done += task.nbytes
            self.bar.done(task.nbytes)
        elif task.kind == "segment":
            seg = task.arg
            idx = seg.volume.index
            self.bytes_done += task.nbytes
            self.bar.done(task.nbytes)
            if isinstance(result, Segment):  # the file goes on: the next link, with the hash state
                self.todo.append(_Task(task.name, "segment", read_segment, result, task.priority, result.nbytes))
            else:
                if isinstance(result, Exception):
                    self.task_errors[idx][seg.item.row] = f"content task failed: {_describe(result)}"
                else:
                    table = pa.Table.from_batches([result])
                    self.ck.save_result(task.name, table)
                    self._found(table, self.walks[idx])
                    self.contents[idx].append(table)
                self.bytes_done += seg.item.size - seg.end  # what a failed chain will not read
                self.files_done += 1
        else:
            batch = task.arg
            idx = batch.volume.index
            if isinstance(result, Exception):
                for it in batch.items:
                    self.task_errors[idx][it.row] = f"content task failed: {_describe(result)}"
            else:
                table = pa.Table.from_batches([result])
                self.ck.save_result(task.name, table)
                self._found(table, self.walks[idx])
                self.contents[idx].append(table)
            self.bytes_done += task.nbytes
            self.files_done += len(batch.items)
            self.bar.done(task.nbytes)
        self.notify("progress", {"bytes_done": self.bytes_done, "bytes_total": self.bytes_total,
                                 "files_done": self.files_done})

    def cancel(self, client: "distributed.Client") -> None:  # noqa: F821
        client.cancel([f for _, f in self.inflight.values()])
        self.inflight.clear()
        self.todo.clear()
        self.bar.close()

    def reprioritize(self, priority: int) -> None:
        """New tasks go out at ``priority``; those in flight (a bounded window) finish as they are."""
        self.priority = priority

    # -- finishing -----------------------------------------------------------------------------------
    def finalize(self) -> RunResult:
        try:
            return self._finalize()
        finally:
            self.bar.close()

    def _finalize(self) -> RunResult:
        ref, media = self.ref, self.media
        assert self.parts is not None and media is not None
        tables = [merge_partition(self.walks[i], self.contents[i], self.task_errors[i]) for i in sorted(self.walks)]
        if self.carved:
            tables.append(dedupe_carved(pa.concat_tables(self.carved), tables, Owner(self.parts)))
        files = files_table(tables)
        if self.extract_dir and Path(self.extract_dir).is_dir():
            kept = {p.removeprefix("$Carved/") for p in files.column("path").to_pylist() if p.startswith("$Carved/")}
            for extracted in Path(self.extract_dir).iterdir():
                if extracted.name not in kept:  # merged away: a duplicate of an allocated file
                    extracted.unlink()
            Path(self.extract_dir).rename(self.staging.path("carved"))
        files, ranking = rank_result(files, home=self.home, now=self.started)  # score, tier, reasons per row
        write_parquet(files, self.staging.path("files.parquet"))
        write_parquet(volumes_table(self.parts, self.walks, files), self.staging.path("volumes.parquet"))
        image_info = {
            "path": ref.path, "format": ref.format, "segments": list(ref.segments), "size": ref.size,
            "md5": media.md5, "sha256": media.sha256,
            "ewf": None if ref.format != "ewf" else {
                "stored_md5": media.ewf_stored_md5, "stored_sha1": media.ewf_stored_sha1,
                "verified": media.ewf_verified},
            "error": media.error,
        }
        write_json(image_info, self.staging.path("image.json"))
        problems = [f"{ref.path}: partition {i} (byte {self.vols[i].offset}): {w.status}"
                    for i, w in sorted(self.walks.items()) if w.status != "ok"]
        bad = allocated_problems(files)
        problems += [f"{ref.path}: partition {r['partition']}: {r['path']}: {r['status']}" for r in bad[:20]]
        if len(bad) > 20:
            problems.append(f"{ref.path}: ... and {len(bad) - 20} more allocated files not fully read")
        if media.error:
            problems.append(f"{ref.path}: {media.error}")
        problems += [f"{ref.path}: {e}" for e in self.carve_errors]
        exit_code = EXIT_PROBLEMS if problems else EXIT_OK
        if media.ewf_verified is False:
            problems.insert(0, f"{ref.path}: E01 INTEGRITY FAILURE: stored MD5 {media.ewf_stored_md5} "
                               f"!= computed MD5 {media.md5}")
            exit_code = EXIT_EWF_MISMATCH
        summary = {
            "tool": f"evidence-triage {__version__}",
            "image": image_info,
            "partitions": len(self.parts),
            "filesystems": {str(i): w.filesystem for i, w in sorted(self.walks.items())},
            "files": counts(files),
            "problems": problems,
            "ranking": ranking,
            "exit_code": exit_code,
            "started": self.started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - self.t0, 3),
        }
        self.staging.commit(summary)
        return RunResult(ref.path, self.staging.out, exit_code, problems, summary)

    def abort(self) -> None:
        self.bar.close()
        self.staging.abort()


def known_ref(home: str | Path | None) -> KnownRef | None:
    """The known-item sets every task checks against, or None when none are installed."""
    from triage.rules.home import state_dir
    from triage.rules.matcher import KnownItems

    path = state_dir(home)
    if not KnownItems.open(path).sets():
        return None
    return KnownRef(str(path), int(config.get("known.phash-max-distance")))


def known_state(known: KnownRef | None) -> dict[str, str]:
    """What a checkpoint depends on: the installed sets (a change means recomputing)."""
    if known is None:
        return {}
    from triage.rules.importer import list_hashsets

    return {s.name: f"{s.category} {s.directory} {s.updated_at}" for s in list_hashsets(known.home)}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def run_image(image: str | Path, out: str | Path, client: "distributed.Client",  # noqa: F821
              overwrite: bool = False, progress: bool = False, workdir: str | Path | None = None,
              carve: str | None = None, extract_carved: bool = False, home: str | Path | None = None,
              notify: Callable[[str, dict], None] | None = None) -> RunResult:
    """Triage one image into ``out``. Raises ImageError when the image cannot be used at all."""
    from distributed import as_completed

    run = ImageRun(image, out, overwrite=overwrite, progress=progress, workdir=workdir, carve=carve,
                   extract_carved=extract_carved, home=home, notify=notify)
    try:
        pending = as_completed(run.fill(client))
        for fut in pending:
            run.on_done(fut)
            for new in run.fill(client):
                pending.add(new)
        return run.finalize()
    except BaseException:
        run.abort()
        raise
