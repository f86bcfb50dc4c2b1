"""ZIP carver against zipfile's archives: local headers, central directory, EOCD, office types."""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.workers.carve import BytesReader, registry
from triage.workers.carve.stream import BLOCK

ZIPS = ["zip", "zip_streamed", "zip_comment", "docx", "xlsx", "odt"]


@pytest.fixture(scope="module")
def zipc() -> registry.Carver:
    return registry.get("zip")


@pytest.mark.parametrize("name", ZIPS)
def test_whole_object_length_and_type(samples: dict, zipc: registry.Carver, name: str) -> None:
    data, kind = samples[name]
    m = zipc.match(BytesReader(data + b"PK\x05\x06" + bytes(40)), 0)
    assert m is not None and (m.length, m.type) == (len(data), kind)
    assert zipc.carve(BytesReader(data), 0) == len(data)


def test_office_mime_and_extension(samples: dict, zipc: registry.Carver) -> None:
    m = zipc.match(BytesReader(samples["docx"][0]), 0)
    assert m is not None and m.extension == "docx" and "wordprocessingml" in m.mime
    m = zipc.match(BytesReader(samples["odt"][0]), 0)
    assert m is not None and (m.extension, m.mime) == ("odt", "application/vnd.oasis.opendocument.text")


def test_streamed_sample_uses_data_descriptors(samples: dict) -> None:
    data = samples["zip_streamed"][0]
    assert struct.unpack("<H", data[6:8])[0] & 0x08 and b"PK\x07\x08" in data


@pytest.mark.parametrize("filler", ["random", "zeros"])
@pytest.mark.parametrize("gap", [0, 3001])
def test_planted_exact_recall(samples: dict, plant: Callable, carve_all: Callable, filler: str, gap: int) -> None:
    data, truth = plant([samples[n] for n in ZIPS], filler=filler, gap=gap)
    assert carve_all(data) == truth


def test_members_are_not_reported_separately(samples: dict, plant: Callable, carve_all: Callable) -> None:
    """The stored JPEG/PNG members are part of the archive, not objects of their own."""
    data, truth = plant([samples["zip"], samples["zip_streamed"]])
    assert carve_all(data) == truth


def test_truncated_archive_exposes_stored_members(samples: dict, plant: Callable, carve_all: Callable) -> None:
    """Without its directory the archive is not an object, but a stored member is still intact."""
    archive = samples["zip"][0]
    jpeg = samples["jpeg"][0]
    cut = archive[: archive.index(b"PK\x01\x02")]
    data, _ = plant([(cut, None)], filler="zeros")
    found = carve_all(data)
    assert [(o, n, t) for o, n, _, t in found] == [(3001 + archive.index(jpeg), len(jpeg), "jpeg")]


@pytest.mark.parametrize("name", ["zip", "zip_streamed", "docx", "odt"])
@pytest.mark.parametrize("where", [0.05, 0.5, 0.95, -22, -21])  # -22: no EOCD; -21: its signature cut
@pytest.mark.parametrize("filler", ["random", "zeros", "end"])
def test_truncated_is_not_reported(samples: dict, zipc: registry.Carver, name: str, where: float, filler: str) -> None:
    data = samples[name][0]
    cut = len(data) + int(where) if where < 0 else int(len(data) * where)
    tail = {"random": random.Random(cut).randbytes(4096), "zeros": bytes(4096), "end": b""}[filler]
    assert zipc.carve(BytesReader(data[:cut] + tail), 0) is None


def test_eocd_must_agree(samples: dict, zipc: registry.Carver) -> None:
    data = samples["zip"][0]
    eocd = data.rindex(b"PK\x05\x06")
    for field, value in [(8, 5), (10, 5), (12, 1), (16, 1)]:  # entries (disk, total), cd size, cd offset
        bad = bytearray(data)
        bad[eocd + field : eocd + field + 2] = struct.pack("<H", value)
        assert zipc.carve(BytesReader(bytes(bad)), 0) is None, field


def test_directory_entry_must_point_at_a_local_header(samples: dict, zipc: registry.Carver) -> None:
    data = bytearray(samples["zip"][0])
    cd = data.index(b"PK\x01\x02")
    data[cd + 42 : cd + 46] = struct.pack("<I", 7)
    assert zipc.carve(BytesReader(bytes(data)), 0) is None


def test_zip64_archive() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        with z.open("big.bin", "w", force_zip64=True) as f:
            f.write(b"abc" * 1000)
        for i in range(3):
            z.writestr(f"f{i}", b"x")
    data = buf.getvalue()
    m = registry.get("zip").match(BytesReader(data), 0)
    assert m is not None and m.length == len(data)


@pytest.mark.slow
def test_zip64_end_records_for_many_entries() -> None:
    """More than 65535 entries forces the ZIP64 end record and locator."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(65536 + 10):
            z.writestr(f"{i}", b"")
    data = buf.getvalue()
    assert b"PK\x06\x06" in data
    assert registry.get("zip").carve(BytesReader(data), 0) == len(data)


def test_zip_bomb_costs_its_headers_not_its_content(zipc: registry.Carver) -> None:
    """256 MiB of zeros deflate to ~250 KiB; carving never inflates it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open("zeros.bin", "w", force_zip64=True) as f:
        chunk = bytes(1 << 20)
        for _ in range(256):
            f.write(chunk)
    data = buf.getvalue()
    reader = CountingReader(data)
    assert zipc.carve(reader, 0) == len(data)
    assert reader.bytes <= len(data) + 2 * BLOCK  # the compressed bytes are skipped or read once, never inflated


class CountingReader(BytesReader):
    """Counts what a carver asks for: the work a hostile archive can make it do."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.calls = 0
        self.bytes = 0

    def read(self, offset: int, size: int) -> bytes:
        data = super().read(offset, size)
        self.calls += 1
        self.bytes += len(data)
        return data


def test_overlapping_entries_bomb_is_bounded(zipc: registry.Carver) -> None:
    """Fifield-style: 20000 directory entries sharing one local header, each claiming ~4 GiB.

    Bounded by work, not wall time (a loaded machine made a 2 s limit flaky): the
    carver reads each archive byte about once plus one 4-byte local-header check
    per directory entry, never the 80 TB the entries claim.
    """
    body = bytes(1000)
    local = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, 0, 0, 0, 0, len(body), 0xFFFFFFF0, 1, 0) + b"k" + body
    entry = b"PK\x01\x02" + struct.pack(
        "<HHHHHHIIIHHHHHII", 20, 20, 0, 0, 0, 0, 0, len(body), 0xFFFFFFF0, 1, 0, 0, 0, 0, 0, 0
    ) + b"k"
    n = 20000

    def eocd(count: int) -> bytes:
        return b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(entry) * n, len(local), 0)

    for count, expected in ((n, "whole"), (n - 1, None)):  # n - 1: the counts disagree
        data = local + entry * n + eocd(count)
        reader = CountingReader(data)
        assert zipc.carve(reader, 0) == (len(data) if expected else None)
        assert reader.calls <= n + len(data) // (64 << 10) + 32  # one header check per entry + block refills
        assert reader.bytes <= len(data) + 4 * n + (128 << 10)   # each byte about once


def test_length_fields_claiming_gigabytes_cost_what_is_there(zipc: registry.Carver) -> None:
    """Sizes of ~4 GiB cost one buffered read, and a streamed entry's search reads the data once."""
    local = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, 8, 0, 0, 0, 0xFFFFFFF0, 0xFFFFFFF0, 1, 0) + b"a"
    reader = CountingReader(local + bytes(4 << 20))
    assert zipc.carve(reader, 0) is None
    assert reader.calls <= 2 and reader.bytes <= 2 * BLOCK
    streamed = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 8, 8, 0, 0, 0, 0, 0, 1, 0) + b"a"
    data = streamed + random.Random(3).randbytes(8 << 20)
    reader = CountingReader(data)
    assert zipc.carve(reader, 0) is None
    assert reader.bytes <= len(data) + 2 * BLOCK + (1 << 20)  # windows overlap by a few bytes


def test_run_of_streamed_headers_is_linear() -> None:
    """Headers with no descriptor must not each search to the end of the run (quadratic).

    Bounded by work: each of the 5000 candidates reads a few buffered blocks at most
    (a quadratic search would read ~2.9 GB here), whatever the machine's load.
    """
    from triage.workers.carve import scan

    local = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 8, 8, 0, 0, 0, 0, 0, 1, 0) + b"a"
    data = (local + bytes(200)) * 5000
    reader = CountingReader(data)
    assert scan(reader) == []
    assert reader.calls <= 3 * 5000 and reader.bytes <= 3 * BLOCK * 5000


@settings(max_examples=200)
@given(st.data())
def test_mutated_zip_is_none_or_bounded(samples: dict, zipc: registry.Carver, mutate: Callable, data: Any) -> None:
    obj = mutate(samples[data.draw(st.sampled_from(ZIPS))][0], data)
    m = zipc.match(BytesReader(obj), 0)
    assert m is None or (0 < m.length <= len(obj) and m.type in ("zip", "docx", "xlsx", "pptx", "odt"))
