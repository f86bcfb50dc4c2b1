"""`triage run` against images built with the real tools, checked against TSK's own command-line tools.

The oracle is `mmls`, `fls -r -p`, `icat`, `fsstat`, `md5sum`-style hashing of the raw
bytes and `ewfverify` (see tests/fixtures/). Every image is run once per session on a
real LocalCluster (the `client` fixture) and the tests read what it wrote.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triage_test_fixtures.mkfs import KNOWN_MTIME
from triage_test_fixtures.results import inode_string
from triage_test_fixtures.tsk_truth import SECTOR, BodyRow, ImageTruth, fls_body

pytestmark = pytest.mark.slow

ALL_IMAGES = ["mbr_image", "gpt_image", "bare_ext4_image", "split_raw_image", "e01_image", "e01_multi_image"]
RAW_IMAGES = ["mbr_image", "gpt_image", "bare_ext4_image"]
HEX16 = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(params=ALL_IMAGES)
def image(request: pytest.FixtureRequest) -> ImageTruth:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=RAW_IMAGES)
def raw_image(request: pytest.FixtureRequest) -> ImageTruth:
    return request.getfixturevalue(request.param)


def _show(items: list[Any], n: int = 15) -> str:
    return "\n  ".join(map(str, items[:n])) + (f"\n  ... {len(items) - n} more" if len(items) > n else "")


def _expected_source(path: str, deleted: bool) -> str:
    if path.startswith("$OrphanFiles/"):
        return "orphan"
    return "deleted" if deleted else "allocated"


# ---------------------------------------------------------------- files.parquet vs fls / icat


def test_every_fls_entry_is_a_row_and_nothing_else(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    want = Counter((p, e.path, e.inode, e.deleted) for p, e in image.all_entries())
    got = Counter((r["partition"], r["path"], inode_string(r), r["deleted"]) for r in run.files if r["source"] != "carved")
    missing = sorted((want - got).elements())
    extra = sorted((got - want).elements())
    assert not missing, f"{image.path.name}: fls entries missing from files.parquet (partition, path, inode, deleted):\n  {_show(missing)}"
    assert not extra, f"{image.path.name}: rows fls does not list:\n  {_show(extra)}"


def test_type_name_and_source_follow_fls(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    keyed = run.by_key()
    wrong = []
    for p, e in image.all_entries():
        for r in keyed.get((p, e.path, e.inode, e.deleted), []):
            got = (r["type"], r["source"], r["name"])
            want = (e.type, _expected_source(e.path, e.deleted), e.path.rsplit("/", 1)[-1])
            if got != want:
                wrong.append((p, e.path, e.inode, "expected", want, "got", got))
    assert not wrong, f"{image.path.name}: (type, source, name) differ from fls:\n  {_show(wrong)}"


def test_content_hashes_equal_icat(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    keyed = run.by_key()
    wrong = []
    checked = 0
    for p, e in image.all_entries():
        fs = image.filesystems[p]
        for r in keyed.get((p, e.path, e.inode, e.deleted), []):
            if e.inode in fs.digests:
                d = fs.digests[e.inode]
                checked += 1
                if (r["md5"], r["sha1"], r["sha256"]) != (d.md5, d.sha1, d.sha256):
                    wrong.append((p, e.path, e.inode, "icat sha256", d.sha256, "got", r["sha256"], r["status"]))
            elif e.inode in fs.icat_errors and r["sha256"] is not None:
                wrong.append((p, e.path, e.inode, "icat fails:", fs.icat_errors[e.inode], "got sha256", r["sha256"]))
    assert checked >= 5
    assert not wrong, f"{image.path.name}: content hashes differ from `icat | sha256sum`:\n  {_show(wrong)}"


def _bodies(image: ImageTruth) -> dict[int, dict[tuple[str, str], BodyRow]]:
    return {p: fls_body(image.path, fs.offset) for p, fs in image.filesystems.items()}


def test_sizes_equal_fls_body_file(raw_image: ImageTruth, triaged) -> None:
    """`size` is the attribute's size, as the `fls -m` body file gives it."""
    run = triaged(raw_image)
    keyed = run.by_key()
    bodies = _bodies(raw_image)
    wrong = []
    for p, e in raw_image.all_entries():
        body = bodies[p].get((e.path, e.inode))
        if body is None or e.meta_type not in ("r", "v"):
            continue
        for r in keyed.get((p, e.path, e.inode, e.deleted), []):
            if r["size"] != body.size:
                wrong.append((p, e.path, e.inode, "fls -m size", body.size, "got", r["size"]))
    assert not wrong, f"{raw_image.path.name}: sizes differ from fls -m:\n  {_show(wrong)}"


def test_statuses_of_a_clean_image_are_ok(raw_image: ImageTruth, triaged) -> None:
    """Every file icat reads in full must be read without a complaint.

    Exempt: what icat cannot read, and attributes of which icat itself returns fewer
    bytes than their size (sparse or uninitialised, e.g. NTFS $BadClus:$Bad).
    """
    run = triaged(raw_image)
    keyed = run.by_key()
    bodies = _bodies(raw_image)
    bad = []
    for p, e in raw_image.all_entries():
        fs = raw_image.filesystems[p]
        body = bodies[p].get((e.path, e.inode))
        d = fs.digests.get(e.inode)
        if e.inode in fs.icat_errors or (d is not None and body is not None and d.size < body.size):
            continue
        for r in keyed.get((p, e.path, e.inode, e.deleted), []):
            if r["status"] != "ok":
                bad.append((p, e.path, e.inode, r["mime"], r["status"]))
    assert not bad, f"{raw_image.path.name}: rows TSK reads fine but the table flags:\n  {_show(bad)}"


# ---------------------------------------------------------------- volumes.parquet vs mmls / fsstat


def _fsstat_type(image: Path, offset: int) -> str:
    out = subprocess.run(["fsstat", "-o", str(offset), str(image)], check=True, capture_output=True).stdout.decode()
    m = re.search(r"^File System Type: (.+)$", out, re.M)
    assert m, out[:400]
    return m.group(1).strip()


def test_volumes_list_every_mmls_row(raw_image: ImageTruth, triaged) -> None:
    run = triaged(raw_image)
    if raw_image.volume_system is None:
        assert len(run.volumes) == 1
        v = run.volumes[0]
        assert (v["index"], v["start"], v["length"], v["volume_system"]) == (0, 0, raw_image.raw.stat().st_size, "none")
        assert v["filesystem"] == _fsstat_type(raw_image.path, 0)
        assert v["status"] == "ok"
        assert len([f for f in run.files if f["source"] != "carved"]) == len(raw_image.filesystems[0].entries)
        return
    assert sorted(v["index"] for v in run.volumes) == [r.index for r in raw_image.volumes]
    for r in raw_image.volumes:
        v = run.volume(r.index)
        flags = "meta" if r.slot == "Meta" else ("unalloc" if r.slot.startswith("-") else "alloc")
        assert (v["slot"], v["start"], v["length"], v["flags"], v["description"], v["volume_system"]) == (
            r.slot, r.start * SECTOR, r.length * SECTOR, flags, r.description, raw_image.volume_system
        ), f"volume {r.index} differs from mmls row {r}"
        if r.index in raw_image.filesystems:
            assert v["filesystem"] == _fsstat_type(raw_image.path, r.start)
            assert v["status"] == "ok"
            walked = [f for f in run.files if f["partition"] == r.index and f["source"] != "carved"]
            assert len(walked) == len(raw_image.filesystems[r.index].entries)
        elif r.index in raw_image.no_fs:
            assert v["filesystem"] is None
            assert "filesystem" in v["status"].lower(), f"status should say no filesystem was found: {v['status']!r}"
        else:
            assert v["filesystem"] is None and v["status"] != "ok"


def test_volume_files_counts_its_rows(image: ImageTruth, triaged) -> None:
    """volumes.files is the number of rows (walked and carved) the partition put in files.parquet."""
    run = triaged(image)
    per = Counter(r["partition"] for r in run.files)
    wrong = [(v["index"], v["files"], per.get(v["index"], 0)) for v in run.volumes if v["files"] != per.get(v["index"], 0)]
    assert not wrong, f"(index, volumes.files, rows): {wrong}"


def test_no_filesystem_partition_is_flagged(gpt_image: ImageTruth, triaged) -> None:
    run = triaged(gpt_image)
    idx = gpt_image.notes["partitions"]["empty"]  # type: ignore[index]
    v = run.volume(idx)
    assert v["filesystem"] is None and v["flags"] == "alloc"
    assert "filesystem" in v["status"].lower()
    assert not [r for r in run.files if r["partition"] == idx and r["source"] != "carved"]
    # the other two partitions are still walked
    assert {run.volume(i)["filesystem"] for i in gpt_image.filesystems} == {"FAT16", "Ext4"}


# ---------------------------------------------------------------- the named files


def test_deleted_files_are_rows_with_source_deleted(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    for p, path in image.marks["deleted"]:
        r = run.row(p, path)
        assert r["deleted"] is True and r["source"] == "deleted", (path, r["deleted"], r["source"])
        assert r["sha256"] == image.digests(p, path).sha256, path


def test_ntfs_alternate_data_stream(mbr_image: ImageTruth, triaged) -> None:
    run = triaged(mbr_image)
    (p, path), = mbr_image.marks["ads"]
    e = mbr_image.entry(p, path)
    r = run.row(p, path)
    assert r["name"] == "hello.txt:secret"
    assert (r["attr_type"], r["attr_id"]) == tuple(int(x) for x in e.inode.split("-")[1:])
    assert r["sha256"] == mbr_image.digests(p, path).sha256
    assert r["size"] == mbr_image.digests(p, path).size
    main = run.row(p, "hello.txt")
    assert main["sha256"] == mbr_image.digests(p, "hello.txt").sha256 != r["sha256"]


def test_jpeg_and_png_are_typed_and_phashed(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    assert image.marks["jpeg"]
    for kind, mime in (("jpeg", "image/jpeg"), ("png", "image/png")):
        for p, path in image.marks.get(kind, []):
            r = run.row(p, path)
            assert r["mime"] == mime, (path, r["mime"], r["magic"])
            assert r["phash"] is not None and HEX16.match(r["phash"]), (path, r["phash"])
            assert r["ext_mismatch"] is False, path
    for p, path in image.marks.get("text", []):
        r = run.row(p, path)
        assert r["mime"] == "text/plain" and r["phash"] is None and r["ext_mismatch"] is False, (path, r)


def test_lying_extension_is_flagged(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    liars = image.marks["liar"]
    assert liars
    for p, path in liars:
        r = run.row(p, path)
        assert r["ext_mismatch"] is True, (path, r["mime"])
        assert r["mime"] in ("image/png", "image/jpeg"), (path, r["mime"])
        assert r["phash"] is not None and HEX16.match(r["phash"])


def test_phashes_of_one_picture_agree_across_filesystems(mbr_image: ImageTruth, triaged) -> None:
    run = triaged(mbr_image)
    hashes = {path: run.row(p, path)["phash"] for p, path in mbr_image.marks["jpeg"]}
    assert len(set(hashes.values())) == len(hashes), f"different pictures, same phash: {hashes}"


# ---------------------------------------------------------------- image.json


def test_image_json_hashes_the_raw_bytes(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    info = run.image
    assert (info["md5"], info["sha256"]) == (image.md5, image.sha256)
    assert info["size"] == image.raw.stat().st_size
    assert [Path(s).name for s in info["segments"]] == [s.name for s in image.segments]
    if image.path.suffix == ".E01":
        assert info["format"] == "ewf"
        assert info["ewf"]["verified"] is True
        assert info["ewf"]["stored_md5"] == image.md5
        assert info["ewf"]["stored_sha1"] is not None
    else:
        assert info["ewf"] is None
        assert info["format"] == ("splitraw" if len(image.segments) > 1 else "raw")
    assert run.result.exit_code == 0 or image.no_fs, (run.result.exit_code, run.result.problems)


def test_summary_is_written_and_counts_rows(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    assert run.summary["exit_code"] == run.result.exit_code
    assert run.summary["files"]["entries"] == len(run.files)
    assert run.summary["files"]["deleted"] == sum(1 for r in run.files if r["source"] == "deleted")


# ---------------------------------------------------------------- determinism and formats


def test_table_is_byte_identical_across_runs(raw_image: ImageTruth, triaged) -> None:
    first = triaged(raw_image)
    second = triaged(raw_image, tag="again")
    assert first.out != second.out
    for name in ("files.parquet", "volumes.parquet"):
        assert (first.out / name).read_bytes() == (second.out / name).read_bytes(), name


@pytest.mark.parametrize("container", ["split_raw_image", "e01_image", "e01_multi_image"])
def test_containers_give_the_raw_images_table(container: str, mbr_image: ImageTruth, triaged,
                                              request: pytest.FixtureRequest) -> None:
    other = request.getfixturevalue(container)
    raw = triaged(mbr_image)
    got = triaged(other)
    assert (got.out / "files.parquet").read_bytes() == (raw.out / "files.parquet").read_bytes()
    assert (got.out / "volumes.parquet").read_bytes() == (raw.out / "volumes.parquet").read_bytes()


# ---------------------------------------------------------------- timestamps


def test_timestamp_columns_are_utc(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    schema = pq.read_schema(run.out / "files.parquet")
    for col in ("mtime", "atime", "ctime", "crtime"):
        t = schema.field(col).type
        assert pa.types.is_timestamp(t) and t.tz == "UTC", (col, t)
    stamped = [r["mtime"] for r in run.files if r["mtime"] is not None]
    assert stamped and all(ts.tzinfo is not None and ts.utcoffset().total_seconds() == 0 for ts in stamped)


def test_known_mtime(image: ImageTruth, triaged) -> None:
    run = triaged(image)
    marks = image.marks.get("known_mtime", [])
    assert marks
    for p, path in marks:
        assert run.row(p, path)["mtime"] == KNOWN_MTIME, path


def _epoch(ts: datetime | None) -> int:
    if ts is None:
        return 0
    return int((ts - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() // 1)


def test_timestamps_equal_fls_body_file(raw_image: ImageTruth, triaged) -> None:
    """atime/mtime/ctime/crtime against `fls -m` (epoch seconds; 0 there is null here)."""
    run = triaged(raw_image)
    keyed = run.by_key()
    bodies = _bodies(raw_image)
    wrong = []
    for p, e in raw_image.all_entries():
        body = bodies[p].get((e.path, e.inode))
        if body is None:
            continue
        want = (body.atime, body.mtime, body.ctime, body.crtime)
        for r in keyed.get((p, e.path, e.inode, e.deleted), []):
            got = tuple(_epoch(r[c]) for c in ("atime", "mtime", "ctime", "crtime"))
            if got != want:
                wrong.append((p, e.path, e.inode, "fls -m", want, "got", got))
    assert not wrong, f"{raw_image.path.name}: times differ from fls -m:\n  {_show(wrong)}"
