"""What bench_run measures besides triage itself: the hashing limit, fiwalk, worker memory, task timings.

Each probe is a plain function returning numbers; bench_run prints them.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 4 << 20


def compile_package() -> None:
    """Bytecode for the package, as an installed (non-editable) package has: where PYTHONDONTWRITEBYTECODE
    is set and the install is editable, every triage process would otherwise compile the whole package
    from source (~0.4 s each), which a cold run's figure should not count. .ci/run does the same."""
    import compileall

    root = Path(__file__).resolve().parents[2]
    for folder in ("triage", "workers", "rules", "cluster"):
        compileall.compile_dir(root / folder, quiet=1, workers=0)


def forget_answers(client) -> None:
    """Make the cluster's workers forget the types and pHashes they remember by content
    (triage.workers.answers.forget_answers). Call before each timed run on a warm cluster: a run
    of a device the workers triaged before would otherwise look most answers up, which a new
    device never can (the 0.5 GiB run benchmark: 2.8-3.0 s with the last run's answers, 4.2 s without)."""
    from triage.workers.answers import forget_answers as forget

    client.run(forget)


def read_through(path: Path) -> float:
    """Read the whole file once (fills the page cache); seconds taken."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(16 << 20)
        while f.readinto(buf):
            pass
    return time.perf_counter() - t0


# ---------------------------------------------------------------- (a) the physical limit


def hash_range(args: tuple[str, int, int]) -> float:
    """md5+sha1+sha256 of image bytes [start, start+length); CPU seconds spent."""
    path, start, length = args
    c0 = time.process_time()
    md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        pos, end = start, start + length
        while pos < end:
            data = os.pread(fd, min(CHUNK, end - pos), pos)
            if not data:
                break
            md5.update(data)
            sha1.update(data)
            sha256.update(data)
            pos += len(data)
    finally:
        os.close(fd)
    return time.process_time() - c0


def hashing_limit(image: Path, nbytes: int, procs: int) -> tuple[float, float]:
    """(wall seconds, summed CPU seconds) to md5+sha1+sha256 ``nbytes`` of ``image`` over ``procs`` processes.

    The bytes are the image's first ``nbytes`` cut into equal ranges, one per process:
    the same amount of hashing as the files' content, read from the page cache.
    """
    size = image.stat().st_size
    nbytes = min(nbytes, size)
    share = -(-nbytes // procs)
    ranges = [(str(image), i * share, min(share, nbytes - i * share)) for i in range(procs)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        pool.map(abs, range(procs))  # processes up before the clock starts
        t0 = time.perf_counter()
        cpu = pool.map(hash_range, ranges)
        wall = time.perf_counter() - t0
    return wall, sum(cpu)


def image_hash_cpu(image: Path) -> dict[str, float]:
    """CPU seconds of md5, sha1 and sha256 each over the whole image, one thread, blocks from the page cache.

    md5 and sha256 of the image are what a run must compute; the image md5 is one sequential
    chain, so it bounds a run from below whatever the number of cores. sha1 is measured too so
    the per-byte cost of every algorithm is known (``/ size``), e.g. to split content hashing.
    """
    cpu = {"md5": 0.0, "sha1": 0.0, "sha256": 0.0}
    hashes = {a: hashlib.new(a) for a in cpu}
    with open(image, "rb", buffering=0) as f:
        buf = bytearray(16 << 20)
        view = memoryview(buf)
        while n := f.readinto(buf):
            for a, h in hashes.items():
                c0 = time.thread_time()
                h.update(view[:n])
                cpu[a] += time.thread_time() - c0
    return cpu


def io_read_chars(pids: list[int]) -> dict[int, int]:
    """Bytes each process has read through system calls so far (``rchar``; page-cache hits included)."""
    import psutil

    return {p: psutil.Process(p).io_counters().read_chars for p in pids}


# ---------------------------------------------------------------- (b) fiwalk


@dataclass
class FiwalkCount:
    seconds: float
    cpu: float  # user+system of the fiwalk process: what its wall time is on an idle core
    fileobjects: int = 0
    regular: int = 0  # name_type r and meta_type 1 (a regular file), as triage's 'r/r'
    regular_bytes: int = 0
    md5s: Counter = field(default_factory=Counter)  # of regular files


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def run_fiwalk(image: Path, xml: Path, libmagic: bool) -> FiwalkCount:
    cmd = ["fiwalk", *(["-f"] if libmagic else []), "-X", str(xml), str(image)]
    xml.unlink(missing_ok=True)
    c0 = os.times()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    c1 = os.times()
    res = FiwalkCount(wall, c1.children_user + c1.children_system - c0.children_user - c0.children_system)
    for _, el in ET.iterparse(xml, events=("end",)):
        if _local(el.tag) != "fileobject":
            continue
        res.fileobjects += 1
        vals = {_local(c.tag): (c.text or "").strip() for c in el if _local(c.tag) != "hashdigest"}
        if vals.get("name_type") == "r" and vals.get("meta_type") == "1":
            res.regular += 1
            res.regular_bytes += int(vals.get("filesize") or 0)
            for c in el:
                if _local(c.tag) == "hashdigest" and c.get("type", "").lower() == "md5":
                    res.md5s[(c.text or "").strip()] += 1
        el.clear()
    return res


# ---------------------------------------------------------------- worker memory


class RssSampler:
    """Peak RSS of some processes: the kernel's high-water mark, reset at start, plus polling.

    Writing 5 to /proc/PID/clear_refs resets VmHWM, so the peak is this window's,
    not the worker's whole life; polling psutil is the fallback when that is refused.
    """

    def __init__(self, pids: list[int], interval: float = 0.05) -> None:
        self.pids = pids
        self.interval = interval
        self.sampled: dict[int, int] = {p: 0 for p in pids}
        self.hwm_reset: dict[int, bool] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> RssSampler:
        for p in self.pids:
            try:
                Path(f"/proc/{p}/clear_refs").write_text("5")
                self.hwm_reset[p] = True
            except OSError:
                self.hwm_reset[p] = False
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        import psutil

        procs = {p: psutil.Process(p) for p in self.pids}
        while not self._stop.is_set():
            for p, proc in procs.items():
                try:
                    self.sampled[p] = max(self.sampled[p], proc.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(self.interval)

    def hwm(self) -> dict[int, int | None]:
        """VmHWM now, in bytes (None if unreadable or never reset)."""
        out: dict[int, int | None] = {}
        for p in self.pids:
            out[p] = None
            try:
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmHWM:") and self.hwm_reset.get(p):
                        out[p] = int(line.split()[1]) * 1024
            except OSError:
                pass
        return out


# ---------------------------------------------------------------- task timings


def summarize_tasks(records: list[dict], t_start: float) -> dict:
    """Per task kind: count, summed/max compute seconds, first start and last stop after ``t_start``;
    per worker: busy seconds."""
    from dask.utils import key_split

    kinds: dict[str, dict] = defaultdict(lambda: {"n": 0, "sum": 0.0, "max": 0.0, "first": 1e18, "last": 0.0,
                                                  "durations": []})
    busy: dict[str, float] = defaultdict(float)
    for r in records:
        for ss in r.get("startstops", ()):
            if ss.get("action") != "compute":
                continue
            d = ss["stop"] - ss["start"]
            k = kinds[key_split(r["key"])]
            k["n"] += 1
            k["sum"] += d
            k["max"] = max(k["max"], d)
            k["first"] = min(k["first"], ss["start"] - t_start)
            k["last"] = max(k["last"], ss["stop"] - t_start)
            k["durations"].append(d)
            busy[r.get("worker", "?")] += d
    return {"kinds": dict(kinds), "busy": dict(busy)}


# ---------------------------------------------------------------- other load on the machine


def _busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _tree_seconds() -> dict[int, float]:
    import psutil

    me = psutil.Process()
    out = {}
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


class Load:
    """CPU used during a window: by this benchmark's process tree, and by everything else.

    The machine is shared; when other processes take a good share of the two cores,
    wall-clock figures of that window are pessimistic and say so.
    """

    def __enter__(self) -> Load:
        self.t0 = time.perf_counter()
        self.busy0 = _busy_seconds()
        self.tree0 = _tree_seconds()
        c = os.times()
        self.children0 = c.children_user + c.children_system
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        busy = _busy_seconds() - self.busy0
        tree1 = _tree_seconds()
        c = os.times()
        waited = c.children_user + c.children_system - self.children0  # children that ended in the window
        self.ours = sum(v - self.tree0.get(pid, 0.0) for pid, v in tree1.items()) + waited
        self.others = max(busy - self.ours, 0.0)
        self.others_share = self.others / (self.wall * (os.cpu_count() or 1)) if self.wall else 0.0

    def note(self) -> str:
        flag = "  <-- shared machine busy: wall times pessimistic" if self.others_share > 0.10 else ""
        return f"[other processes used {self.others:.1f} CPU s = {100 * self.others_share:.0f}% of the cores]{flag}"
