"""SQLite carver against sqlite3's own database files: header rules plus the b-tree walk."""

from __future__ import annotations

import random
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.workers.carve import BytesReader, registry

DBS = ["sqlite", "sqlite_small_pages", "sqlite_wal"]


@pytest.fixture(scope="module")
def db() -> registry.Carver:
    return registry.get("sqlite")


def _patch(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


@pytest.mark.parametrize("name", DBS)
def test_whole_object_length(samples: dict, db: registry.Carver, name: str) -> None:
    data = samples[name][0]
    assert db.carve(BytesReader(data + bytes(8192)), 0) == len(data)


def test_sqlite3_reads_the_carved_bytes(samples: dict, plant: Callable, carve_all: Callable, tmp_path: Path) -> None:
    """Oracle: what we carve out of random data opens and passes sqlite's own integrity check."""
    data, _ = plant([samples["sqlite"]])
    (offset, length, _, _), = carve_all(data)
    path = tmp_path / "carved.db"
    path.write_bytes(data[offset : offset + length])
    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT count(*) FROM msg").fetchone() == (3000,)
    finally:
        con.close()


@pytest.mark.parametrize("filler", ["random", "zeros"])
@pytest.mark.parametrize("gap", [0, 3001])
def test_planted_exact_recall(samples: dict, plant: Callable, carve_all: Callable, filler: str, gap: int) -> None:
    data, truth = plant([samples[n] for n in DBS], filler=filler, gap=gap)
    assert carve_all(data) == truth


@pytest.mark.parametrize("name", DBS)
@pytest.mark.parametrize("where", [0.3, 0.5, 0.8])
@pytest.mark.parametrize("filler", ["random", "zeros", "end"])
def test_truncated_is_not_reported(samples: dict, db: registry.Carver, name: str, where: float, filler: str) -> None:
    """Zeros or other data where pages should be fail the b-tree walk; a short extent fails the size."""
    data = samples[name][0]
    cut = int(len(data) * where)
    rest = len(data) - cut + 4096
    tail = {"random": random.Random(cut).randbytes(rest), "zeros": bytes(rest), "end": b""}[filler]
    assert db.carve(BytesReader(data[:cut] + tail), 0) is None


def test_stale_in_header_size_is_not_trusted(samples: dict, db: registry.Carver) -> None:
    data = samples["sqlite"][0]
    counter = struct.unpack(">I", data[24:28])[0]
    assert db.carve(BytesReader(_patch(data, 24, struct.pack(">I", counter + 1))), 0) is None


@pytest.mark.parametrize(
    ("at", "value"),
    [(16, b"\x03\x00"), (18, b"\x03"), (21, b"\x41"), (44, b"\x00\x00\x00\x09"), (72, b"\x01"), (100, b"\x07")],
)
def test_header_rules(samples: dict, db: registry.Carver, at: int, value: bytes) -> None:
    """Page size power of two, versions, fixed fractions, schema format, zero reserve, page-1 type."""
    assert db.carve(BytesReader(_patch(samples["sqlite"][0], at, value)), 0) is None


def test_length_field_claiming_gigabytes_is_refused_from_the_header(samples: dict, db: registry.Carver) -> None:
    """Bounded by work, not time: a size past the cap or the extent is refused after the 100-byte header."""
    data = samples["sqlite"][0]
    reads: list[int] = []

    class Counting(BytesReader):
        def read(self, offset: int, size: int) -> bytes:
            out = super().read(offset, size)
            reads.append(len(out))
            return out

    assert db.carve(Counting(_patch(data, 28, b"\x7f\xff\xff\xff")), 0) is None  # 8 TiB: over the cap
    assert db.carve(Counting(_patch(data, 28, b"\x00\x03\xff\xff")), 0) is None  # 1 GiB: past the extent
    assert reads == [100, 100]


def test_verification_reads_are_bounded(samples: dict, db: registry.Carver) -> None:
    from triage.workers.carve import sqlite as mod

    reads: list[int] = []

    class Counting(BytesReader):
        def read(self, offset: int, size: int) -> bytes:
            reads.append(size)
            return super().read(offset, size)

    data = samples["sqlite"][0]
    assert db.carve(Counting(data), 0) == len(data)
    assert len(reads) <= mod.MAX_VERIFY_PAGES + 1


@settings(max_examples=200)
@given(st.data())
def test_mutated_db_is_none_or_bounded(samples: dict, db: registry.Carver, mutate: Callable, data: Any) -> None:
    raw = samples[data.draw(st.sampled_from(["sqlite_small_pages", "sqlite_wal"]))][0]
    head = data.draw(st.integers(0, 8)) * 512  # corrupt the first pages, where the structure is
    obj = raw[:head] + mutate(raw[head : head + 4096], data) + raw[head + 4096 :]
    n = db.carve(BytesReader(obj), 0)
    assert n is None or 0 < n <= len(obj)
