"""The archive readers and the expander, without Dask: members, hashes (hashlib as the oracle),
depth, encryption, bombs, hostile names and corrupt archives; arbitrary bytes raise nothing."""

from __future__ import annotations

import gzip
import io
import random
import struct
import tarfile
import zipfile
import zlib

import py7zr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from triage_test_fixtures.archives import (have_tool, hashes, sevenzip_bytes, tar_bytes, tool_archive, zip_bytes)

from triage.settings import content_options
from triage.workers.archives import ARCHIVES, ArchiveLimits, Expander, RandomAccess, archive_mimes, open_random

MIME = {"zip": "application/zip", "tar": "application/x-tar", "gzip": "application/gzip",
        "7z": "application/x-7z-compressed"}


def limits(**kw: int) -> ArchiveLimits:
    base = dict(depth=2, max_members=1000, max_bytes=1 << 30, max_ratio=100, ratio_after=1 << 20,
                nested_bytes=16 << 20)
    return ArchiveLimits(**{**base, **kw})


def expand(data: bytes, mime: str, path: str = "ev/a", **kw: int) -> tuple[str, dict[str, dict], Expander]:
    exp = Expander(content_options(), limits(**kw), partition=3)
    status = exp.expand(io.BytesIO(data), path, len(data), mime)
    return status, {r["path"]: r for r in exp.batch(None).to_pylist()}, exp


def check(rows: dict[str, dict], prefix: str, truth: dict[str, bytes]) -> None:
    for name, data in truth.items():
        row = rows[f"{prefix}/{name}"]
        assert {a: row[a] for a in ("md5", "sha1", "sha256")} == hashes(data), name
        assert row["size"] == len(data) and row["status"] == "ok" and row["source"] == "archive member"
        assert row["partition"] == 3 and row["container"] == prefix


FILES = {"a.txt": b"alpha\n" * 100, "dir/b.bin": bytes(range(256)) * 40, "empty": b""}


def test_registry_covers_the_four_formats():
    assert set(ARCHIVES.names()) == {"zip", "tar", "gzip", "7z"}
    assert set(MIME.values()) <= archive_mimes()


@pytest.mark.parametrize("kind", ["zip-deflate", "zip-stored", "tar", "tgz", "tbz2", "txz", "7z"])
def test_members_and_hashes(kind):
    data, mime = {
        "zip-deflate": (zip_bytes(FILES), MIME["zip"]),
        "zip-stored": (zip_bytes(FILES, zipfile.ZIP_STORED), MIME["zip"]),
        "tar": (tar_bytes(FILES), MIME["tar"]),
        "tgz": (tar_bytes(FILES, "w:gz"), MIME["gzip"]),
        "tbz2": (tar_bytes(FILES, "w:bz2"), "application/x-bzip2"),
        "txz": (tar_bytes(FILES, "w:xz"), "application/x-xz"),
        "7z": (sevenzip_bytes(FILES), MIME["7z"]),
    }[kind]
    status, rows, _ = expand(data, mime)
    assert status == "ok"
    check(rows, "ev/a", FILES)


def test_gzip_is_one_member_named_by_its_header():
    data = gzip.compress(b"log line\n" * 1000, mtime=1234567890)
    status, rows, _ = expand(data, MIME["gzip"], "var/log/syslog.2.gz")
    assert status == "ok"
    check(rows, "var/log/syslog.2.gz", {"syslog.2": b"log line\n" * 1000})
    assert rows["var/log/syslog.2.gz/syslog.2"]["mtime"].timestamp() == 1234567890
    b = io.BytesIO()
    with gzip.GzipFile("inner-name.csv", "wb", fileobj=b, mtime=0) as g:
        g.write(b"a,b\n")
    status, rows, _ = expand(b.getvalue(), MIME["gzip"], "x.gz")
    assert list(rows) == ["x.gz/inner-name.csv"]


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_depth_counts_archive_levels(depth):
    l3 = zip_bytes({"deep.txt": b"deep"})
    l2 = tar_bytes({"l3.zip": l3, "two.txt": b"two"})
    l1 = zip_bytes({"l2.tar": l2, "one.txt": b"one"})
    status, rows, _ = expand(l1, MIME["zip"], "l1.zip", depth=depth)
    if depth == 0:
        assert status == "not expanded: depth limit 0" and rows == {}
        return
    assert status == "ok"
    assert ("l1.zip/l2.tar/two.txt" in rows) == (depth >= 2)
    assert ("l1.zip/l2.tar/l3.zip/deep.txt" in rows) == (depth >= 3)
    if depth == 1:
        assert rows["l1.zip/l2.tar"]["status"] == "not expanded: depth limit 1"
    if depth == 2:
        assert rows["l1.zip/l2.tar/l3.zip"]["status"] == "not expanded: depth limit 2"
        assert rows["l1.zip/l2.tar/l3.zip"]["sha256"] == hashes(l3)["sha256"]


def test_nested_archive_larger_than_memory_bound_is_listed_not_expanded():
    inner = zip_bytes({"big.bin": random.Random(1).randbytes(1 << 20)}, zipfile.ZIP_STORED)
    status, rows, _ = expand(zip_bytes({"inner.zip": inner}), MIME["zip"], nested_bytes=len(inner) - 1)
    assert rows["ev/a/inner.zip"]["status"].startswith("not expanded: archive inside an archive larger than")
    assert rows["ev/a/inner.zip"]["md5"] == hashes(inner)["md5"]


def test_encrypted_zip_flag_bit():
    data = bytearray(zip_bytes({"s.txt": b"secret", "p.txt": b"plain"}, zipfile.ZIP_STORED))
    # set the "encrypted" flag bit of the first member in its local and central headers (ZipCrypto is
    # what the bit announces; the reader must not try to decode it)
    data[6] |= 1
    cd = data.index(b"PK\x01\x02")
    data[cd + 8] |= 1
    status, rows, _ = expand(bytes(data), MIME["zip"])
    assert rows["ev/a/s.txt"]["status"] == "encrypted" and rows["ev/a/s.txt"]["md5"] is None
    assert rows["ev/a/p.txt"]["md5"] == hashes(b"plain")["md5"]


@pytest.mark.skipif(not have_tool("zip"), reason="needs Info-ZIP zip")
def test_encrypted_zip_made_by_zip():
    status, rows, _ = expand(tool_archive("zip", {"s.txt": b"secret"}, "pw"), MIME["zip"])
    assert status == "ok" and rows["ev/a/s.txt"]["status"] == "encrypted" and rows["ev/a/s.txt"]["size"] == 6


@pytest.mark.skipif(not have_tool("7z"), reason="needs p7zip")
def test_encrypted_7z_content_and_headers():
    status, rows, _ = expand(tool_archive("7z", {"s.txt": b"secret"}, "pw"), MIME["7z"])
    assert status == "ok" and rows["ev/a/s.txt"]["status"] == "encrypted" and rows["ev/a/s.txt"]["md5"] is None
    status, rows, _ = expand(tool_archive("7z", {"s.txt": b"secret"}, "pw", encrypt_headers=True), MIME["7z"])
    assert status.startswith("encrypted: 7z headers encrypted") and rows == {}


def test_zip_bomb_by_declared_ratio_reads_nothing():
    bomb = zip_bytes({"ok.txt": b"fine", "zeros": bytes(64 << 20)})
    status, rows, exp = expand(bomb, MIME["zip"])
    assert status.startswith("archive not fully expanded: member zeros declares ratio") and "over 100:1" in status
    assert rows["ev/a/ok.txt"]["status"] == "ok"
    assert rows["ev/a/zeros"]["status"].startswith("not read:") and rows["ev/a/zeros"]["md5"] is None
    assert exp.bytes == 4  # only ok.txt was decompressed


@pytest.mark.parametrize("kind", ["tgz", "7z", "gzip"])
def test_bomb_by_actual_ratio_stops_with_bounded_work(kind):
    zeros = bytes(64 << 20)
    data, mime = {"tgz": (tar_bytes({"z": zeros}, "w:gz"), MIME["gzip"]),
                  "7z": (sevenzip_bytes({"z": zeros}), MIME["7z"]),
                  "gzip": (gzip.compress(zeros), MIME["gzip"])}[kind]
    status, rows, exp = expand(data, mime, max_ratio=20, ratio_after=1 << 20)
    assert "exceeds 20:1 (archives.max-ratio)" in status, status
    assert exp.bytes <= max(20 * len(data), 1 << 20) + (4 << 20)  # stopped within a chunk of the bound
    (member,) = rows.values()
    assert member["status"].startswith("not read: archive not fully expanded") and member["md5"] is None


def test_expanded_bytes_budget_spans_nested_archives():
    inner = zip_bytes({"x": b"x" * 5000}, zipfile.ZIP_STORED)
    outer = zip_bytes({"a.zip": inner, "b": b"y" * 5000}, zipfile.ZIP_STORED)
    status, rows, exp = expand(outer, MIME["zip"], max_bytes=len(inner) + 5000 + 100)
    assert "archives.max-bytes" in status
    assert exp.bytes <= len(inner) + 5000 + 100


def test_count_bomb_zip_refused_from_its_end_record():
    many = zip_bytes({f"{i}": b"" for i in range(300)})
    status, rows, _ = expand(many, MIME["zip"], max_members=100)
    assert status == "archive not fully expanded: 300 members exceed archives.max-members 100" and rows == {}
    # an end record that claims a million entries costs nothing: no directory is parsed
    end = many[many.rindex(b"PK\x05\x06"):]
    fake = b"PK\x05\x06" + end[4:8] + (1_000_000 & 0xFFFF).to_bytes(2, "little") * 2 + end[12:]
    status, rows, _ = expand(many[: many.rindex(b"PK\x05\x06")] + fake, MIME["zip"], max_members=100)
    assert "members exceed" in status or "not expanded" in status


def test_count_bomb_tar_stops_at_the_limit():
    status, rows, exp = expand(tar_bytes({f"f{i}": b"z" for i in range(300)}), MIME["tar"], max_members=100)
    assert status == "archive not fully expanded: more than 100 members (archives.max-members)"
    assert len(rows) == 100 and exp.members == 100


def test_hostile_names_are_shown_verbatim():
    zdata = zip_bytes({"/abs": b"1", "../../up": b"2", "<img src=x onerror=alert(1)>": b"3", "a\\b": b"4"})
    raw = bytearray(zdata)  # a name stored as cp437/latin-1 bytes without the UTF-8 flag
    zdata2 = bytes(raw).replace(b"a\\b", b"\xe9\\b")
    status, rows, _ = expand(zdata2, MIME["zip"])
    assert {"ev/a//abs", "ev/a/../../up", "ev/a/<img src=x onerror=alert(1)>", "ev/a/\\xe9\\b"} == set(rows)
    status, rows, _ = expand(tar_bytes({"x/\udcff\udcfe.bin": b"5"}, symlinks={"l": "../../../etc"}), MIME["tar"])
    assert set(rows) == {"ev/a/x/\\xff\\xfe.bin", "ev/a/l"}
    assert rows["ev/a/l"]["type"] == "l/l" and rows["ev/a/x/\\xff\\xfe.bin"]["name"] == "\\xff\\xfe.bin"


def test_hostile_7z_names_are_shown_verbatim():
    """py7zr's writer refuses such names, so they are patched into an unencoded header (CRCs redone)."""
    b = io.BytesIO()
    with py7zr.SevenZipFile(b, "w") as z:
        z.encoded_header_mode = False
        z.writestr(b"1", "QQ_up.txt")
        z.writestr(b"2", "Q_abs.txt")
    v = bytearray(b.getvalue())
    for old, new in (("QQ_up.txt", "../up.txt"), ("Q_abs.txt", "/abs1.txt")):
        v = v.replace(old.encode("utf-16-le"), new.encode("utf-16-le"))
    off, size = struct.unpack_from("<QQ", v, 12)
    struct.pack_into("<I", v, 28, zlib.crc32(v[32 + off: 32 + off + size]))
    struct.pack_into("<I", v, 8, zlib.crc32(v[12:32]))
    status, rows, _ = expand(bytes(v), MIME["7z"])
    assert status == "ok"
    assert rows["ev/a/../up.txt"]["md5"] == hashes(b"1")["md5"] and rows["ev/a//abs1.txt"]["md5"] == hashes(b"2")["md5"]


@pytest.mark.parametrize("mime", ["application/x-bzip2", "application/x-xz"])
def test_a_lone_compressed_file_is_not_an_archive(mime):
    import bz2
    import lzma

    data = (bz2.compress if "bzip2" in mime else lzma.compress)(b"just a log\n" * 100)
    status, rows, _ = expand(data, mime)
    assert status == "ok" and rows == {}


def test_app_packages_are_not_expanded():
    assert "application/java-archive" not in archive_mimes()
    assert "application/vnd.android.package-archive" not in archive_mimes()


def test_corrupt_archives_give_a_status():
    good = zip_bytes({"a.txt": b"a" * 1000, "b.txt": b"b" * 1000})
    status, rows, _ = expand(good[:-40], MIME["zip"])
    assert status.startswith("archive not expanded: corrupt or unsupported: BadZipFile") and rows == {}
    tgz = tar_bytes({"a": bytes(range(256)) * 400, "b": b"b" * 1000}, "w:gz")
    status, rows, _ = expand(tgz[: len(tgz) // 2], MIME["gzip"])
    assert status.startswith("archive not fully expanded:")
    assert rows["ev/a/a"]["status"].startswith(("partial:", "unreadable:"))


def test_impossible_dos_dates_are_no_time():
    data = bytearray(zip_bytes({"a.txt": b"a"}))
    for sig, at in ((b"PK\x03\x04", 10), (b"PK\x01\x02", 12)):  # date 0x0000 (month 0), time 0xffff
        i = data.index(sig) + at
        data[i: i + 4] = b"\xff\xff\x00\x00"
    status, rows, _ = expand(bytes(data), MIME["zip"])
    assert status == "ok" and rows["ev/a/a.txt"]["mtime"] is None and rows["ev/a/a.txt"]["md5"] == hashes(b"a")["md5"]


def test_bad_member_data_ends_that_member_only():
    data = bytearray(zip_bytes({"a.txt": b"a" * 1000, "b.txt": b"b" * 1000}, zipfile.ZIP_STORED))
    data[data.index(b"a" * 10) + 5] = ord("X")  # CRC no longer matches
    status, rows, _ = expand(bytes(data), MIME["zip"])
    assert status == "ok"
    assert rows["ev/a/a.txt"]["status"].startswith(("partial: BadZipFile", "unreadable: BadZipFile: Bad CRC-32"))
    assert rows["ev/a/b.txt"]["md5"] == hashes(b"b" * 1000)["md5"]


@pytest.mark.parametrize("fmt", sorted(MIME))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_arbitrary_bytes_never_raise(fmt, data):
    heads = {"zip": b"PK\x03\x04", "tar": b"", "gzip": b"\x1f\x8b\x08\x00", "7z": b"7z\xbc\xaf\x27\x1c"}
    body = heads[fmt] + data.draw(st.binary(max_size=1500))
    status, rows, exp = expand(body, MIME[fmt], max_members=50)
    assert isinstance(status, str) and len(rows) <= 50


def test_random_access_reads_like_a_file():
    blob = bytes(range(256)) * 100
    f = RandomAccess(lambda pos, n: blob[pos: pos + n], len(blob))
    f.seek(-10, io.SEEK_END)
    assert f.read(100) == blob[-10:]
    f.seek(1000)
    assert f.read(5) == blob[1000:1005] and f.tell() == 1005
    assert open_random(lambda pos, n: blob[pos: pos + n], len(blob)).read() == blob
    with zipfile.ZipFile(open_random(*(lambda z: (lambda p, n: z[p: p + n], len(z)))(zip_bytes(FILES)))) as zf:
        assert zf.read("a.txt") == FILES["a.txt"]


def test_tar_stream_does_not_keep_every_member(monkeypatch):
    """A stream of many members is not held in memory whole: tarfile's TarInfo list stays short."""
    seen = []
    real_next = tarfile.TarFile.next

    def spy(self):
        seen.append(len(self.members))
        return real_next(self)

    monkeypatch.setattr(tarfile.TarFile, "next", spy)
    status, rows, _ = expand(tar_bytes({f"f{i}": b"" for i in range(50)}), MIME["tar"])
    assert status == "ok" and len(rows) == 50 and max(seen) <= 1
