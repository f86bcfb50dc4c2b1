"""`triage run` on real third-party images (shared/corpus), against the ground truth shipped beside them.

Beside each image: `fls -r -p -l` listings (`<image>.fls.txt`, or `<image>.o<N>.fls.txt`
per partition at sector N), `mmls` output and fiwalk's DFXML with md5/sha1 per file,
all made with The Sleuth Kit 4.11.1 (see MANIFEST.md). The images are used as they are,
read-only; the last test checks they are byte for byte what the manifest says.
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from triage.rules.errors import ImageError, UnsupportedFormatError
from triage_test_fixtures.results import inode_string
from triage_test_fixtures.tsk_truth import SECTOR, FlsEntry, parse_fls, parse_mmls

pytestmark = pytest.mark.slow


def _corpus_dir() -> Path | None:
    here = Path(__file__).resolve().parents[1]
    for cand in (os.environ.get("TRIAGE_CORPUS"), here.parent / "shared" / "corpus", "/work/shared/corpus"):
        if cand and (Path(cand) / "MANIFEST.md").is_file():
            return Path(cand)
    return None


CORPUS = _corpus_dir()
if CORPUS is None:
    pytest.skip("the third-party corpus (shared/corpus/MANIFEST.md) is not on this machine", allow_module_level=True)
assert CORPUS is not None

#: images pytsk3 reads (directly, or via pyewf / libyal / our split-raw reader)
READABLE = [
    "dfvfs/ext2.E01",
    "dfvfs/ext2.vmdk",
    "dfvfs/ext2.qcow2",
    "dfvfs/image.vhd",
    "dfvfs/ext2.split.E01",
    "dfvfs/ext2.splitraw.000",
    "dfvfs/iso9660.raw",
    "dfvfs/ímynd.dd",
    "plaso/tsk_volume_system.raw",
    "sleuthkit/image.dd",
    "sleuthkit/image.iso",
    "sleuthkit/imageformat_mmls_1.E01",
    "velociraptor/fat_very_small.dd",
    "velociraptor/partition_image.E01",
    "velociraptor/hierarchy_64.ext4",
    "dfir_ntfs/fat_deleted_dir_2.raw",
    "dfir_ntfs/exfat_win.raw",
    "dfir_ntfs/gpt-512-3p.raw",
]
NOT_IMAGES = ["sleuthkit/bogus.E01", "pytsk/bogus.raw", "dfvfs/bogus.001", "velociraptor/MBR"]
UNSUPPORTED = ["dfvfs/hfsplus_zlib.dmg"]


def _fls_truth(image: Path) -> dict[int, list[FlsEntry]]:
    """Sector offset -> fls entries, from `<image>.fls.txt` and `<image>.o<N>.fls.txt`."""
    out: dict[int, list[FlsEntry]] = {}
    whole = image.with_name(image.name + ".fls.txt")
    if whole.is_file():
        out[0] = parse_fls(whole.read_bytes(), long=True)
    for f in image.parent.glob(image.name + ".o*.fls.txt"):
        m = re.fullmatch(re.escape(image.name) + r"\.o(\d+)\.fls\.txt", f.name)
        if m:
            out[int(m.group(1))] = parse_fls(f.read_bytes(), long=True)
    return out


def _partition_at(run, byte_offset: int) -> int:
    found = [v["index"] for v in run.volumes if v["start"] == byte_offset and v["flags"] == "alloc"]
    assert len(found) == 1, f"no single allocated volume at byte {byte_offset}: {run.volumes}"
    return found[0]


def _show(items: list, n: int = 15) -> str:
    return "\n  ".join(map(str, items[:n])) + (f"\n  ... {len(items) - n} more" if len(items) > n else "")


@pytest.fixture(params=READABLE)
def corpus_image(request: pytest.FixtureRequest) -> Path:
    return CORPUS / request.param


def test_run_succeeds(corpus_image: Path, triaged) -> None:
    run = triaged(corpus_image)
    assert run.result.exit_code in (0, 4), run.result.exit_code
    assert run.result.exit_code == 0 or run.result.problems
    assert run.image["size"] > 0


def test_every_fls_entry_is_a_row(corpus_image: Path, triaged) -> None:
    run = triaged(corpus_image)
    truth = _fls_truth(corpus_image)
    if corpus_image.name == "gpt-512-3p.raw":
        assert truth == {} and run.files == []  # three partitions, none with a filesystem
        return
    assert truth, f"no fls ground truth beside {corpus_image}"
    want: Counter = Counter()
    for sector, entries in truth.items():
        part = _partition_at(run, sector * SECTOR) if run.volumes[0]["volume_system"] != "none" else 0
        want.update((part, e.path, e.inode, e.deleted) for e in entries)
    got = Counter((r["partition"], r["path"], inode_string(r), r["deleted"]) for r in run.files if r["source"] != "carved")
    missing = sorted((want - got).elements())
    extra = sorted((got - want).elements())
    assert not missing, f"{corpus_image.name}: fls entries missing from files.parquet:\n  {_show(missing)}"
    assert not extra, f"{corpus_image.name}: rows fls does not list:\n  {_show(extra)}"


def test_types_follow_fls(corpus_image: Path, triaged) -> None:
    run = triaged(corpus_image)
    keyed = run.by_key()
    wrong = []
    for sector, entries in _fls_truth(corpus_image).items():
        part = _partition_at(run, sector * SECTOR) if run.volumes[0]["volume_system"] != "none" else 0
        for e in entries:
            for r in keyed.get((part, e.path, e.inode, e.deleted), []):
                if r["type"] != e.type:
                    wrong.append((part, e.path, e.inode, "fls", e.type, "got", r["type"]))
    assert not wrong, f"{corpus_image.name}: type pairs differ from fls:\n  {_show(wrong)}"


_NS = "{http://www.forensicswiki.org/wiki/Category:Digital_Forensics_XML}"


def _fiwalk_files(image: Path) -> list[dict]:
    """fiwalk's regular files with hashes: volume byte offset, inode, filename, md5, sha1."""
    xml = image.with_name(image.name + ".fiwalk.xml")
    if not xml.is_file():
        return []
    out = []
    for vol in ET.parse(xml).getroot().iter(_NS + "volume"):
        offset = int(vol.get("offset", "0"))
        for fo in vol.iter(_NS + "fileobject"):
            digests = {h.get("type", "").lower(): (h.text or "").strip().lower() for h in fo.findall(_NS + "hashdigest")}
            if fo.findtext(_NS + "meta_type") != "1" or "md5" not in digests:
                continue
            out.append({
                "offset": offset,
                "inode": int(fo.findtext(_NS + "inode") or -1),
                "filename": fo.findtext(_NS + "filename"),
                "md5": digests["md5"],
                "sha1": digests.get("sha1"),
                "alloc": fo.findtext(_NS + "alloc") == "1",
            })
    return out


#: images of which fiwalk hashed at least one regular file (two hold only directories and empty files)
WITH_FIWALK_HASHES = [n for n in READABLE if _fiwalk_files(CORPUS / n)]


@pytest.mark.parametrize("name", WITH_FIWALK_HASHES)
def test_hashes_equal_fiwalk(name: str, triaged) -> None:
    """md5/sha1 of each regular file fls lists equal fiwalk's (matched by volume, inode and path).

    fiwalk also hashes objects fls does not list by that name (NTFS '$Secure', whose
    default stream fiwalk picks itself); those have no row identity here and are left out.
    """
    corpus_image = CORPUS / name
    run = triaged(corpus_image)
    bare = run.volumes[0]["volume_system"] == "none"
    listed = {(sector * SECTOR, e.inode_number, e.path) for sector, es in _fls_truth(corpus_image).items() for e in es}
    objs = [o for o in _fiwalk_files(corpus_image) if (o["offset"], o["inode"], o["filename"]) in listed]
    assert objs, f"fiwalk and fls share no hashed regular file in {corpus_image.name}"
    wrong = []
    for o in objs:
        part = 0 if bare else _partition_at(run, o["offset"])
        rows = [r for r in run.files if r["partition"] == part and r["inode"] == o["inode"] and r["path"] == o["filename"]]
        if len(rows) != 1:
            wrong.append((o["filename"], o["inode"], f"{len(rows)} rows"))
            continue
        r = rows[0]
        if (r["md5"], r["sha1"]) != (o["md5"], o["sha1"]):
            wrong.append((o["filename"], o["inode"], "fiwalk", o["md5"], o["sha1"], "got", r["md5"], r["sha1"], r["status"]))
    assert not wrong, f"{corpus_image.name}: files whose hashes differ from fiwalk's DFXML:\n  {_show(wrong)}"


#: the split E01 has no mmls file beside it (it is the same image as ext2.E01)
WITH_MMLS = [n for n in READABLE if (CORPUS / (n + ".mmls.txt")).is_file()]


@pytest.mark.parametrize("name", WITH_MMLS)
def test_volumes_equal_mmls(name: str, triaged) -> None:
    corpus_image = CORPUS / name
    run = triaged(corpus_image)
    body = corpus_image.with_name(corpus_image.name + ".mmls.txt").read_text()
    if "# exit status 1" in body:  # no volume system: one whole-image volume
        assert [(v["index"], v["start"], v["volume_system"]) for v in run.volumes] == [(0, 0, "none")]
        assert run.volumes[0]["length"] == run.image["size"]
        return
    vs, rows = parse_mmls(body)
    assert [v["index"] for v in run.volumes] == [r.index for r in rows]
    for r, v in zip(rows, run.volumes):
        assert (v["slot"], v["start"], v["length"], v["description"]) == (
            r.slot, r.start * SECTOR, r.length * SECTOR, r.description), r
    fs_offsets = {s * SECTOR for s in _fls_truth(corpus_image)}
    for v in run.volumes:
        if v["flags"] == "alloc":
            has_fs = v["start"] in fs_offsets
            assert (v["filesystem"] is not None) == has_fs, v
            assert (v["status"] == "ok") == has_fs, v


# ---------------------------------------------------------------- files that are no image, or one we cannot read


@pytest.mark.parametrize("name", NOT_IMAGES)
def test_not_an_image_is_an_image_error(name: str, client, tmp_path: Path) -> None:
    from triage.pipeline import run_image

    path = CORPUS / name
    with pytest.raises(ImageError) as info:
        run_image(path, tmp_path / "out", client)
    assert not isinstance(info.value, UnsupportedFormatError), str(info.value)
    assert str(path) in str(info.value) or path.name in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out" / "files.parquet").exists()


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_container_says_so(name: str, client, tmp_path: Path) -> None:
    from triage.pipeline import run_image

    path = CORPUS / name
    with pytest.raises(UnsupportedFormatError, match="(?i)unsupported format") as info:
        run_image(path, tmp_path / "out", client)
    assert path.name in str(info.value) and "DMG" in str(info.value)
    assert not (tmp_path / "out" / "files.parquet").exists()


# ---------------------------------------------------------------- read-only


def _manifest_sha256() -> dict[str, str]:
    out = {}
    for line in (CORPUS / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 8 and cells[2].startswith("`") and re.fullmatch(r"`[0-9a-f]{64}`", cells[8]):
            out[cells[2].strip("`")] = cells[8].strip("`")
    return out


def test_corpus_is_unchanged_after_the_runs() -> None:
    """Runs above opened the evidence read-only: every image still has the manifest's sha256."""
    sums = _manifest_sha256()
    assert len(sums) >= 20, sums
    changed = []
    for rel, want in sums.items():
        p = CORPUS / rel
        if hashlib.sha256(p.read_bytes()).hexdigest() != want:
            changed.append(rel)
    assert not changed, f"corpus images changed: {changed}"
