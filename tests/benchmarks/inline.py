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


def profile_run(image: Path, out: Path, carve: str | None = None, top: int = 30) -> str:
    """Run ImageRun inline under cProfile; a printable report: CPU per task kind, then top functions."""
    from triage.finish import finalize
    from triage.runstate import ImageRun

    client = InlineClient()
    prof = cProfile.Profile(time.process_time)  # CPU time: other load on the machine does not inflate it
    c0, t0 = time.process_time(), time.perf_counter()
    prof.enable()
    run = ImageRun(image, out, carve=carve)
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
    total_cpu, total_wall = time.process_time() - c0, time.perf_counter() - t0
    lines = [f"in-process run (carve={carve or 'as configured'}): {total_wall:.2f} s wall, {total_cpu:.2f} s CPU "
             "under cProfile; CPU per task kind:"]
    for kind, cpu in sorted(client.cpu.items(), key=lambda kv: -kv[1]):
        n = client.count.get(kind)
        lines.append(f"    {kind:<18} {cpu:7.2f} s CPU" + (f"  ({n} tasks)" if n else ""))
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    body = buf.getvalue()
    start = body.find("   ncalls")
    lines.append(f"  top {top} functions by own CPU time (tottime):")
    lines.append((body[start:] if start >= 0 else body).rstrip())
    return "\n".join(lines)
