"""Carving as part of `triage run`, against objects planted where only carving can find them.

The disks (tests/fixtures/carving.py) are built with the real tools; objects go only
into blocks ``blkls -A`` calls free, into space ``mmls`` lists as outside every
partition, and into a partition with no filesystem. Ground truth is the planted
bytes' sha256 and place, so every carved row is either exactly one planted whole
object or a false object. Chunks are made small (``CHUNK``) so that objects straddle
chunk boundaries; one run with the default chunking must give the same answer.
"""

from __future__ import annotations

import hashlib
import re
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import dask
import pytest

from triage_test_fixtures import carving
from triage_test_fixtures.mkfs import TOOL_ENV
from triage_test_fixtures.results import Triaged, load

pytestmark = pytest.mark.slow

CHUNK = 1 << 20
OVERLAP = 256 << 10
NAME = re.compile(r"^[0-9]{12}\.[a-z0-9]{1,8}$")
#: what libmagic (the mime column) says each planted kind is
MIME = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "pdf": "application/pdf",
        "zip": "application/zip", "sqlite": "application/vnd.sqlite3",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
IMAGES = ("jpeg", "png", "gif")


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    missing = [t for t in carving.TOOLS if shutil.which(t, path=TOOL_ENV["PATH"]) is None]
    if missing:
        pytest.skip(f"tool(s) not installed: {', '.join(missing)}")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("carving")


@pytest.fixture(scope="module")
def disk(work: Path) -> carving.CarvingDisk:
    return carving.build_carving_disk(work / "disk", CHUNK)


def small_chunks() -> Any:
    """The config is read where the run is built (this process), so setting it here is enough."""
    return dask.config.set({"triage.carve.chunk-bytes": CHUNK, "triage.carve.overlap": OVERLAP})


def triage(client: Any, image: Path, out: Path, *, chunked: bool = True, **kw: Any) -> Triaged:
    from triage.pipeline import run_image

    if chunked:
        with small_chunks():
            res = run_image(image, out, client, **kw)
    else:
        res = run_image(image, out, client, **kw)
    return load(res, out)


@pytest.fixture(scope="module")
def unalloc(client: Any, disk: carving.CarvingDisk, work: Path) -> Triaged:
    return triage(client, disk.path, work / "unalloc", carve="unalloc", extract_carved=True)


@pytest.fixture(scope="module")
def carve_all(client: Any, disk: carving.CarvingDisk, work: Path) -> Triaged:
    return triage(client, disk.path, work / "all", carve="all")


def carved(run: Triaged) -> list[dict[str, Any]]:
    return [r for r in run.files if r["source"] == "carved"]


def spans(rows: list[dict[str, Any]]) -> set[tuple[int, int, str]]:
    return {(r["offset"], r["length"], r["sha256"]) for r in rows}


def image_bytes(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def _show(rows: list[Any]) -> str:
    return "\n  ".join(map(str, rows[:20]))


# ---------------------------------------------------------------- recall and precision


def test_fixture_plants_every_kind_everywhere(disk: carving.CarvingDisk) -> None:
    """The ground truth covers what the examiner cares about; the rest of the tests lean on it."""
    regions = {p.region for p in disk.whole}
    assert regions >= {"ext4-free", "ext4-deleted", "fat-free", "fat-deleted", "lead", "gap", "nofs", "tail"}
    assert {p.kind for p in disk.whole} == set(MIME)
    assert {p.kind for p in disk.cut} >= {"jpeg", "png", "zip", "pdf", "sqlite", "gif"}
    for b in disk.chunk_boundaries:
        assert any(p.offset < b < p.end for p in disk.whole), f"nothing straddles chunk boundary {b}"
    for p in disk.planted:
        assert hashlib.sha256(image_bytes(disk.path, p.offset, p.length)).hexdigest() == p.sha256


def test_every_whole_object_is_carved_once_with_its_place(unalloc: Triaged, disk: carving.CarvingDisk) -> None:
    rows = carved(unalloc)
    by_offset: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_offset.setdefault(r["offset"], []).append(r)
    missed = [p for p in disk.whole if p.offset not in by_offset]
    assert not missed, f"{len(missed)} of {len(disk.whole)} planted objects not carved:\n  {_show(missed)}"
    for p in disk.whole:
        [r] = by_offset[p.offset]
        data = image_bytes(disk.path, p.offset, p.length)
        assert (r["length"], r["size"], r["sha256"]) == (p.length, p.length, p.sha256), (p, r)
        assert (r["md5"], r["sha1"]) == (hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest())
        assert r["path"] == f"$Carved/{p.offset:012d}.{p.extension}" and r["name"] == r["path"][8:]
        assert r["partition"] == p.partition, f"{p}: carved into volume-table entry {r['partition']}"
        assert r["mime"] == MIME[p.kind], (p, r["mime"])
        assert r["status"] == "ok", (p, r["status"])
        assert (r["phash"] is not None) == (p.kind in IMAGES), (p, r["phash"])
        assert r["deleted"] is True and r["inode"] == 0


def test_nothing_but_the_planted_objects_is_carved(unalloc: Triaged, disk: carving.CarvingDisk) -> None:
    """Exact precision: no truncated object, no object embedded in another, nothing from random bytes."""
    want = {(p.offset, p.length, p.sha256) for p in disk.whole}
    extra = sorted(spans(carved(unalloc)) - want)
    assert not extra, f"carved objects that were never planted:\n  {_show(extra)}"
    assert len(carved(unalloc)) == len(disk.whole)


def test_truncated_objects_are_not_reported(unalloc: Triaged, disk: carving.CarvingDisk) -> None:
    starts = {r["offset"] for r in carved(unalloc)}
    for p in disk.cut:
        assert p.offset not in starts, f"truncated {p.kind} at {p.offset} ({p.region}) reported as an object"
        inside = [r for r in carved(unalloc) if p.offset < r["offset"] < p.end]
        assert not inside, f"objects carved from inside truncated {p}: {inside}"


def test_random_bytes_yield_no_object(unalloc: Triaged, disk: carving.CarvingDisk) -> None:
    for start, length in disk.random_regions:
        found = [r for r in carved(unalloc) if start <= r["offset"] < start + length]
        assert not found, f"objects carved from seeded random bytes: {found}"


def test_objects_across_chunk_boundaries_are_carved_once(unalloc: Triaged, disk: carving.CarvingDisk) -> None:
    for b in disk.chunk_boundaries:
        [p] = [p for p in disk.whole if p.offset < b < p.end]
        rows = [r for r in carved(unalloc) if p.offset <= r["offset"] < p.end]
        assert [(r["offset"], r["sha256"]) for r in rows] == [(p.offset, p.sha256)], (b, p, rows)


def test_default_chunking_gives_the_same_answer(client: Any, unalloc: Triaged, disk: carving.CarvingDisk,
                                                work: Path) -> None:
    """One chunk per extent (the 64 MiB default) and 1 MiB chunks report the same objects."""
    default = triage(client, disk.path, work / "default", chunked=False)
    key = lambda r: (r["offset"], r["length"], r["sha256"], r["partition"], r["path"])  # noqa: E731
    assert sorted(map(key, carved(default))) == sorted(map(key, carved(unalloc)))


# ---------------------------------------------------------------- extraction


def test_extracted_objects_are_the_planted_bytes_named_by_offset(unalloc: Triaged, disk: carving.CarvingDisk) -> None:
    folder = unalloc.out / "carved"
    files = {f.name: f for f in folder.iterdir()}
    assert set(files) == {r["name"] for r in carved(unalloc)}
    planted = {p.offset: p for p in disk.whole}
    for name, f in files.items():
        assert NAME.match(name), f"extracted name {name!r} is not <12-digit offset>.<type>"
        p = planted[int(name.split(".")[0])]
        assert name.endswith("." + p.extension)
        assert hashlib.sha256(f.read_bytes()).hexdigest() == p.sha256, name
    assert [f.name for f in unalloc.out.iterdir() if f.name.startswith(".")] == []  # no staging left behind


# ---------------------------------------------------------------- carving allocated space too


def test_carve_all_does_not_repeat_allocated_files(carve_all: Triaged, disk: carving.CarvingDisk) -> None:
    alloc = {(r["offset"], r["sha256"]) for r in carve_all.files if r["source"] == "allocated"}
    for name, (offset, sha) in disk.allocated.items():
        assert (offset, sha) in alloc, f"{name}: the walk does not report it at byte {offset}"
    allocated_shas = {sha for _, sha in disk.allocated.values()}
    dup = [r for r in carved(carve_all) if r["sha256"] in allocated_shas]
    assert not dup, f"allocated files reported again as carved objects:\n  {_show(dup)}"


def test_carve_all_finds_exactly_what_unallocated_carving_finds(carve_all: Triaged, unalloc: Triaged) -> None:
    """On this disk everything outside allocated files is covered by both modes; allocated objects
    are merged away, so the answers agree, partitions included."""
    key = lambda r: (r["offset"], r["length"], r["sha256"], r["partition"])  # noqa: E731
    assert sorted(map(key, carved(carve_all))) == sorted(map(key, carved(unalloc)))


# ---------------------------------------------------------------- the command line


def test_cli_carve_flags(triage_cli: Any, disk: carving.CarvingDisk, unalloc: Triaged, work: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_TRIAGE__CARVE__CHUNK_BYTES", str(CHUNK))
    monkeypatch.setenv("DASK_TRIAGE__CARVE__OVERLAP", str(OVERLAP))
    none = triage_cli("run", disk.path, "-o", work / "cli-none", "--no-carve", "--no-progress")
    assert none.returncode == 4, none.stderr  # the no-filesystem partition is a problem worth an exit 4
    assert not carved(load(None, work / "cli-none"))
    assert not (work / "cli-none" / "carved").exists()
    every = triage_cli("run", disk.path, "-o", work / "cli-all", "--carve-all", "--extract-carved", "--no-progress")
    assert every.returncode == 4, every.stderr
    run = load(None, work / "cli-all")
    assert spans(carved(run)) == spans(carved(unalloc))
    assert sorted(f.name for f in (work / "cli-all" / "carved").iterdir()) == sorted(r["name"] for r in carved(run))


# ---------------------------------------------------------------- hostile input


def test_hostile_objects_cost_bounded_time_and_memory(client: Any, work: Path) -> None:
    """Lying lengths (a PNG chunk of 4 GiB, a ZIP member of 4 GiB, segments running off), a zip bomb
    and a pixel bomb: the run completes quickly, the honest objects behind them are all found."""
    hostile = carving.build_hostile_disk(work / "hostile")
    t0 = time.perf_counter()
    run = triage(client, hostile.path, work / "hostile-out", chunked=False, extract_carved=True)
    elapsed = time.perf_counter() - t0
    assert elapsed < 60, f"carving 24 MiB of hostile input took {elapsed:.0f} s"
    want = {(p.offset, p.length, p.sha256) for p in hostile.planted if p.whole}
    assert spans(carved(run)) == want
    bomb = [r for r in carved(run) if r["mime"] == "image/png" and r["phash"] is None]
    assert len(bomb) == 1 and bomb[0]["status"] != "ok", bomb  # hashed and typed, but never decoded
    zip_bomb = [r for r in carved(run) if r["status"].startswith("archive not fully expanded")]
    assert len(zip_bomb) == 1 and "ratio" in zip_bomb[0]["status"]  # expanded only up to archives.max-ratio
    assert all(r["status"] == "ok" for r in carved(run) if r not in bomb + zip_bomb)
    rss = {w: u.ru_maxrss for w, u in client.run(resource.getrusage, resource.RUSAGE_SELF).items()}
    assert max(rss.values()) < 1536 * 1024, f"worker peak RSS {rss} KiB"  # Linux: KiB


# ---------------------------------------------------------------- containers across split points


@pytest.fixture(scope="module")
def boundary(work: Path) -> carving.BoundaryDisk:
    return carving.build_boundary_disk(work / "boundary", CHUNK, OVERLAP)


@pytest.fixture(scope="module")
def boundary_runs(client: Any, boundary: carving.BoundaryDisk, work: Path) -> tuple[Triaged, Triaged]:
    """(1 MiB chunks with a 256 KiB look-back, the default 64 MiB chunks)."""
    return (triage(client, boundary.path, work / "boundary-small"),
            triage(client, boundary.path, work / "boundary-default", chunked=False))


def test_members_of_a_container_longer_than_the_overlap_are_not_carved_alone(
        boundary_runs: tuple[Triaged, Triaged], boundary: carving.BoundaryDisk) -> None:
    small, _ = boundary_runs
    [album] = [p for p in boundary.planted if p.kind == "zip"]
    inside = [r for r in carved(small) if album.offset < r["offset"] < album.end]
    assert not inside, f"{len(inside)} ZIP members carved alone, e.g. {inside[0]['path']}"


def test_an_object_running_out_of_its_partition_hides_its_thumbnail(
        boundary_runs: tuple[Triaged, Triaged], boundary: carving.BoundaryDisk) -> None:
    _, default = boundary_runs
    [photo] = [p for p in boundary.planted if p.kind == "jpeg"]
    inside = [r for r in carved(default) if photo.offset < r["offset"] < photo.end]
    assert not inside, f"thumbnail carved alone: {inside}"


def test_containers_across_split_points_are_themselves_found(
        boundary_runs: tuple[Triaged, Triaged], boundary: carving.BoundaryDisk) -> None:
    for run in boundary_runs:
        got = spans(carved(run))
        for p in boundary.planted:
            assert (p.offset, p.length, p.sha256) in got, p
        extra = {(r["offset"], r["length"]) for r in carved(run)} - {(p.offset, p.length) for p in boundary.planted}
        assert extra <= set(boundary.embedded), f"not even a member of a container: {extra - set(boundary.embedded)}"
