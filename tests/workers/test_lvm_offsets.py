"""Image offsets inside LVM2 logical volumes: files.parquet ``offset`` and carved objects point at the raw image's
bytes, through the logical volume's segments (one LV here lies in two runs, the second physically first);
volumes.parquet shows the hierarchy as columns."""

from __future__ import annotations

import hashlib

import pytest

from triage.workers.lvmmeta import lv_extents, parse_text
from triage.workers.volmap import VolumeMap
from triage_test_fixtures import carving, lvm
from triage_test_fixtures.mkfs import random_bytes, text_bytes

MIB = 1 << 20
SPLIT = ((16, 3), (6, 5))   # LV "split": extents 0-2 on PV extents 16-18, then 3-7 on PV extents 6-10
LVS = {"home": (0, 4, "ext4"), "split": (SPLIT, 8, "fat")}
FILES = {
    "home": {"home/notes.txt": text_bytes(7, 30), "home/pic.jpg": carving.jpeg(3)},
    # big.bin fills past the first 3 MiB run, so after.txt's clusters lie in the second
    "split": {"big.bin": random_bytes(5, 3 * MIB + 300_000), "after.txt": text_bytes(8, 60),
              "gone.jpg": carving.jpeg(4)},
}
DELETE = {"home": ["home/pic.jpg"], "split": ["gone.jpg"]}

pytestmark = [pytest.mark.slow, pytest.mark.skipif(lvm.can_build() is not None, reason=str(lvm.can_build()))]


@pytest.fixture(scope="module")
def split_run(tmp_path_factory, triaged):
    disk = lvm.build_lvm_disk(tmp_path_factory.mktemp("lvmsplit"), LVS, FILES, DELETE)
    return disk, triaged(disk.path), disk.path.read_bytes()


def _lvs(run) -> dict[str, dict]:
    return {v["slot"].rsplit("/", 1)[1]: v for v in run.volumes if v["layer"] == "lvm-lv"}


def test_hierarchy_columns(split_run):
    disk, run, raw = split_run
    pv_start = lvm.LAYOUT["pv"][0] * 512
    by_index = {v["index"]: v for v in run.volumes}
    pv = by_index[disk.pv_index]
    assert (pv["layer"], pv["parent"], pv["flags"]) == ("lvm-pv", None, "meta")
    assert by_index[2]["layer"] == "partition" and by_index[2]["parent"] is None
    lvs = _lvs(run)
    assert {v["parent"] for v in lvs.values()} == {disk.pv_index}
    pe = pv_start + MIB  # --dataalignment 1m: extents start 1 MiB into the PV
    assert lvs["split"]["extents"] == [{"start": pe + 16 * MIB, "length": 3 * MIB},
                                       {"start": pe + 6 * MIB, "length": 5 * MIB}]
    assert lvs["home"]["extents"] == [{"start": pe, "length": 4 * MIB}]


def test_file_offsets_point_at_the_files_bytes_in_the_raw_image(split_run):
    disk, run, raw = split_run
    lvs = _lvs(run)
    checked = 0
    for name, files in FILES.items():
        for path, data in files.items():
            if path in DELETE[name]:
                continue
            row = run.row(lvs[name]["index"], path)
            assert row["md5"] == hashlib.md5(data).hexdigest()
            off = row["offset"]
            assert off is not None, path
            assert raw[off:off + 512] == data[:512], (name, path, off)  # the first run starts there
            checked += 1
    after = run.row(lvs["split"]["index"], "after.txt")["offset"]
    second = lvs["split"]["extents"][1]
    assert second["start"] <= after < second["start"] + second["length"]  # mapped through the second segment
    assert checked == 3


def test_carved_objects_in_logical_volumes_lie_where_they_say(split_run):
    disk, run, raw = split_run
    lvs = {v["index"]: v for v in _lvs(run).values()}
    carved = [r for r in run.files if r["source"] == "carved" and r["partition"] in lvs]
    want = {hashlib.sha256(FILES[n][p]).hexdigest(): n for n, paths in DELETE.items() for p in paths}
    found = {r["sha256"]: lvs[r["partition"]]["slot"].rsplit("/", 1)[1] for r in carved}
    assert {h: found.get(h) for h in want} == want  # each deleted picture carved, and owned by its own LV
    for r in carved:
        assert hashlib.sha256(raw[r["offset"]:r["offset"] + r["length"]]).hexdigest() == r["sha256"]
        spans = lvs[r["partition"]]["extents"]
        assert any(s["start"] <= r["offset"] < s["start"] + s["length"] for s in spans)


def test_metadata_text_parser_and_unmappable_segments():
    text = ('vg {\n extent_size = 8 # sectors\n physical_volumes { pv0 { id = "A" pe_start = 16 } }\n'
            ' logical_volumes {\n  lin { segment_count = 1 segment1 { start_extent = 0 extent_count = 2\n'
            '   type = "striped" stripe_count = 1 stripes = [ "pv0", 3 ] } }\n'
            '  thin { segment1 { start_extent = 0 extent_count = 1 type = "thin" } }\n }\n}\n'
            'contents = "Text Format Volume Group"\n')
    vg = parse_text(text)["vg"]
    assert vg["logical_volumes"]["lin"]["segment1"]["stripes"] == ["pv0", 3]
    assert vg["physical_volumes"]["pv0"]["pe_start"] == 16
    assert lv_extents(lambda o, n: b"\0" * n, 0, "lin") is None  # no label: unknown, never a guess


def test_volume_map():
    m = VolumeMap(((1000, 100), (500, 50)))
    assert [m.offset(0), m.offset(99), m.offset(100), m.offset(149), m.offset(150)] == [1000, 1099, 500, 549, None]
    assert m.ranges(90, 20) == [(1090, 10), (500, 10)]
    assert VolumeMap.none().offset(0) is None and VolumeMap.none().ranges(0, 10) == []
    assert VolumeMap.linear(4096, 10).offset(20) == 4116  # a partition's runs past a truncated table still map
