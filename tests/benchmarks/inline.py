"""The triage graph of one image run in this process, task by task, to see where a worker's CPU goes.

:class:`InlineClient` has just enough of ``distributed.Client`` for
``triage.runstate.ImageRun``: ``submit`` runs the task at once and hands back a
finished future. So the exact tasks of a real run (same planning, batching and
carving) execute one after another under cProfile, and their CPU time is summed
per task kind with ``time.process_time`` (unaffected by other load on the machine).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


class _Done:
    def __init__(self, key: str, value: Any = None, error: BaseException | None = None) -> None:
        self.key, self._value, self._error = key, value, error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class InlineClient:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def submit(self, func, arg, *, key: str, **_: Any) -> _Done:
        kind = key.split("-", 1)[0]
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            done = _Done(key, func(arg))
        except Exception as exc:  # the pipeline turns a failed task into a status; so do we
            done = _Done(key, error=exc)
        self.cpu[kind] += time.process_time() - c0
        self.wall[kind] += time.perf_counter() - t0
        self.count[kind] += 1
        return done


def _rchar() -> int:
    """Bytes this process has read through system calls so far (page-cache hits included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def run_inline(image: Path, out: Path, carve: str | None = None) -> tuple[InlineClient, pstats.Stats, dict]:
    """ImageRun executed task by task in this process under cProfile (CPU timer)."""
    from triage.finish import finalize
    from triage.runstate import ImageRun

    client = InlineClient()
    prof = cProfile.Profile(time.process_time)  # CPU time: other load on the machine does not inflate it
    c0, t0, r0 = time.process_time(), time.perf_counter(), _rchar()
    prof.enable()
    kw = {} if carve is None else {"carve": carve}
    run = ImageRun(image, out, **kw)
    while not run.finished:
        for task in run.take():
            fut = client.submit(task.kind.func, task.arg, key=f"{task.kind.NAME}-{task.name}")
            try:
                outcome = fut.result()
            except Exception as exc:  # noqa: BLE001 - the run turns a failed task into a status
                outcome = exc
            run.task_done(task, outcome)
    f0 = time.process_time()
    finalize(run)
    prof.disable()
    client.cpu["finalize (client)"] = time.process_time() - f0
    totals = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0, "rchar": _rchar() - r0}
    return client, pstats.Stats(prof), totals


def _ct(stats: pstats.Stats, file_part: str, names: tuple[str, ...], own: bool = False, outer: bool = False) -> float:
    """Summed cumulative (or own, ``own``) CPU of the functions ``names`` defined in a file matching ``file_part``;
    ``outer``: the largest one only (for functions that call each other)."""
    vals = [(tt if own else ct) for (f, _, fn), (_, _, tt, ct, _) in stats.stats.items()  # type: ignore[attr-defined]
            if file_part in f and fn in names]
    return (max(vals, default=0.0) if outer else sum(vals))


def phases(client: InlineClient, stats: pstats.Stats, hash_cpu_per_byte: dict[str, float]) -> list[tuple[str, float]]:
    """CPU seconds per phase of a run, from task-kind CPU and the profile of the tasks' functions.

    The content hashing is one builtin (``HASH.update``) for all three algorithms; it is split by the
    per-byte cost of each, measured on this machine in the same benchmark run.
    """
    updates = _ct(stats, "~", ("<method 'update' of '_hashlib.HASH' objects>",), own=True)
    per = {a: hash_cpu_per_byte[a] for a in ("md5", "sha1", "sha256")}
    total_per = sum(per.values())
    scan = _ct(stats, "workers/carve/scanner.py", ("scan", "iter_scan"), outer=True)
    carvers = _ct(stats, "workers/carve/scanner.py", ("_validate",))
    write = _ct(stats, "pyarrow/parquet/core.py", ("write_table",), outer=True)
    out = [("image hash (media task, both threads)", client.cpu.get("media", 0.0))]
    out += [(f"task kind {k}", v) for k, v in sorted(client.cpu.items()) if k not in ("media", "finalize (client)")]
    out += [
        ("  content read (TSK read_random)", _ct(stats, "~", ("<method 'read_random' of 'pytsk3.File' objects>",),
                                                 own=True)),
        *((f"  {a} (share of HASH.update by cost/byte)", updates * per[a] / total_per) for a in per),
        ("  typing (magic_type: libmagic and its cache)", _ct(stats, "workers/answers.py", ("magic_type",))),
        ("  pHash (phash_file)", _ct(stats, "rules/phash.py", ("phash_file",))),
        ("  carving scan (scan minus carvers)", max(scan - carvers, 0.0)),
        ("  carvers (validate candidates)", carvers),
        ("merge + write (client finalize)", client.cpu.get("finalize (client)", 0.0)),
        ("  of which Parquet write", write),
    ]
    return out


def profile_run(image: Path, out: Path, carve: str | None = None, top: int = 30) -> str:
    """Run ImageRun inline under cProfile; a printable report: CPU per task kind, then top functions."""
    client, stats, totals = run_inline(image, out, carve)
    total_cpu, total_wall = totals["cpu"], totals["wall"]
    prof = stats
    lines = [f"in-process run (carve={carve or 'as configured'}): {total_wall:.2f} s wall, {total_cpu:.2f} s CPU "
             "under cProfile; CPU per task kind:"]
    for kind, cpu in sorted(client.cpu.items(), key=lambda kv: -kv[1]):
        n = client.count.get(kind)
        lines.append(f"    {kind:<18} {cpu:7.2f} s CPU" + (f"  ({n} tasks)" if n else ""))
    buf = io.StringIO()
    prof.stream = buf  # type: ignore[attr-defined]
    prof.sort_stats("tottime").print_stats(top)
    body = buf.getvalue()
    start = body.find("   ncalls")
    lines.append(f"  top {top} functions by own CPU time (tottime):")
    lines.append((body[start:] if start >= 0 else body).rstrip())
    return "\n".join(lines)
