"""PNG carver against Pillow's PNGs: chunk walk, CRC32 of every chunk, IEND."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.workers.carve import BytesReader, registry

PNGS = ["png", "png_palette"]


@pytest.fixture(scope="module")
def png() -> registry.Carver:
    return registry.get("png")


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


@pytest.mark.parametrize("name", PNGS)
def test_whole_object_length(samples: dict, png: registry.Carver, name: str) -> None:
    data = samples[name][0]
    assert png.carve(BytesReader(data + data), 0) == len(data)


@pytest.mark.parametrize("filler", ["random", "zeros"])
@pytest.mark.parametrize("gap", [0, 3001])
def test_planted_exact_recall(samples: dict, plant: Callable, carve_all: Callable, filler: str, gap: int) -> None:
    data, truth = plant([samples[n] for n in PNGS] * 2, filler=filler, gap=gap)
    assert carve_all(data) == truth


@pytest.mark.parametrize("name", PNGS)
@pytest.mark.parametrize("where", [0.05, 0.5, -1, -5])
@pytest.mark.parametrize("filler", ["random", "zeros", "end"])
def test_truncated_is_not_reported(samples: dict, png: registry.Carver, name: str, where: float, filler: str) -> None:
    data = samples[name][0]
    cut = len(data) + int(where) if where < 0 else int(len(data) * where)
    tail = {"random": random.Random(cut).randbytes(4096), "zeros": bytes(4096), "end": b""}[filler]
    assert png.carve(BytesReader(data[:cut] + tail), 0) is None


def test_bad_crc_is_rejected(samples: dict, png: registry.Carver) -> None:
    data = bytearray(samples["png"][0])
    data[data.index(b"IDAT") + 10] ^= 0x01
    assert png.carve(BytesReader(bytes(data)), 0) is None


def test_requires_ihdr_first_and_idat(png: registry.Carver) -> None:
    sig = b"\x89PNG\r\n\x1a\n"
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
    idat = _chunk(b"IDAT", zlib.compress(b"\x00" + bytes(12) * 4))
    iend = _chunk(b"IEND", b"")
    assert png.carve(BytesReader(sig + ihdr + idat + iend), 0) == len(sig + ihdr + idat + iend)
    assert png.carve(BytesReader(sig + ihdr + iend), 0) is None  # no image data
    assert png.carve(BytesReader(sig + idat + ihdr + iend), 0) is None  # IHDR not first
    bad_depth = _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 3, 2, 0, 0, 0))
    assert png.carve(BytesReader(sig + bad_depth + idat + iend), 0) is None


def test_length_field_claiming_gigabytes_is_fast(png: registry.Carver) -> None:
    sig = b"\x89PNG\r\n\x1a\n"
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
    huge = struct.pack(">I", 0x7FFFFFFF) + b"IDAT" + bytes(1 << 20)
    reads: list[int] = []

    class Counting(BytesReader):
        def read(self, offset: int, size: int) -> bytes:
            out = super().read(offset, size)
            reads.append(len(out))
            return out

    assert png.carve(Counting(sig + ihdr + huge), 0) is None
    assert sum(reads) <= len(sig + ihdr + huge) + (64 << 10)  # bounded by work, not time: read once at most


@given(st.data())
def test_mutated_png_is_none_or_bounded(samples: dict, png: registry.Carver, mutate: Callable, data: Any) -> None:
    obj = mutate(samples[data.draw(st.sampled_from(PNGS))][0], data)
    n = png.carve(BytesReader(obj), 0)
    assert n is None or 0 < n <= len(obj)
