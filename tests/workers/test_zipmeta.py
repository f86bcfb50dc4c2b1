"""A zip member has one name and one set of times whether the zip is the source or was found inside evidence."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zipfile

from triage.settings import content_options
from triage.workers.archives import ArchiveLimits, Expander
from triage.workers.extraction import walk_source
from triage.workers.image import identify
from triage.workers.zipmeta import FILETIME_EPOCH, zip_times

UNIX_MTIME = 1_600_000_000            # the extended timestamp (0x5455): whole seconds
NTFS_MTIME = 1_500_000_000_123_456_700  # the NTFS field (ns, a multiple of its 100 ns ticks): another instant


def _zip() -> bytes:
    ext = struct.pack("<HHBi", 0x5455, 5, 1, UNIX_MTIME)
    ticks = NTFS_MTIME // 100 + FILETIME_EPOCH
    ntfs = struct.pack("<HHIHHQQQ", 0x000A, 32, 0, 1, 24, ticks, ticks, ticks)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        both = zipfile.ZipInfo("both/extra.txt", date_time=(2010, 1, 2, 3, 4, 6))
        both.extra = ntfs + ext
        z.writestr(both, b"two time fields\n")
        z.writestr(zipfile.ZipInfo("dos/only.txt", date_time=(2011, 5, 6, 7, 8, 10)), b"dos time\n")
        z.writestr(zipfile.ZipInfo("caf\xe9/name.txt", date_time=(2012, 1, 1, 0, 0, 0)), b"cp437 name\n")
    return buf.getvalue()


def test_the_zip_source_and_a_zip_found_read_the_same_names_and_times(tmp_path):
    data = _zip()
    path = tmp_path / "phone.zip"
    path.write_bytes(data)
    listed = {r["path"]: r for r in walk_source(identify(path)).table.to_pylist()}

    limits = ArchiveLimits(depth=2, max_members=100, max_bytes=1 << 20, max_ratio=100, ratio_after=1 << 20,
                           nested_bytes=1 << 20)
    exp = Expander(content_options(), limits, partition=0)
    assert exp.expand(io.BytesIO(data), "ev/phone.zip", len(data), "application/zip") == "ok"
    found = {r["path"].removeprefix("ev/phone.zip/"): r for r in exp.batch(None).to_pylist()}

    assert set(listed) == set(found)
    for p in listed:
        assert (listed[p]["mtime"], listed[p]["atime"], listed[p]["crtime"]) == \
            (found[p]["mtime"], found[p]["atime"], found[p]["crtime"]), p
    utc = dt.timezone.utc
    assert listed["both/extra.txt"]["mtime"] == dt.datetime.fromtimestamp(UNIX_MTIME, utc)  # 0x5455 first
    assert listed["dos/only.txt"]["mtime"] == dt.datetime(2011, 5, 6, 7, 8, 10, tzinfo=utc)  # DOS time read as UTC
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("both/extra.txt")
    assert zip_times(info)["atime"] == NTFS_MTIME  # the NTFS field fills what 0x5455 lacks
