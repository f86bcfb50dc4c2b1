"""JPEG carver against Pillow's JPEGs: baseline, progressive, restart markers, EXIF thumbnail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.workers.carve import BytesReader, registry

JPEGS = ["jpeg", "jpeg_progressive", "jpeg_exif_thumb", "jpeg_restart"]


@pytest.fixture(scope="module")
def jpeg() -> registry.Carver:
    return registry.get("jpeg")


@pytest.mark.parametrize("name", JPEGS)
def test_whole_object_length(samples: dict[str, tuple[bytes, str]], jpeg: registry.Carver, name: str) -> None:
    data = samples[name][0]
    assert jpeg.carve(BytesReader(data + b"\xff\xd9" * 8), 0) == len(data)


@pytest.mark.parametrize("filler", ["random", "zeros"])
@pytest.mark.parametrize("gap", [0, 3001])
def test_planted_exact_recall(samples: dict, plant: Callable, carve_all: Callable, filler: str, gap: int) -> None:
    data, truth = plant([samples[n] for n in JPEGS], filler=filler, gap=gap)
    assert carve_all(data) == truth


def test_exif_thumbnail_not_reported_separately(samples: dict, plant: Callable, carve_all: Callable) -> None:
    """The thumbnail's own SOI..EOI sits inside APP1; only the outer image is the object."""
    outer = samples["jpeg_exif_thumb"][0]
    data, truth = plant([(outer, "jpeg")])
    found = carve_all(data)
    assert found == truth and found[0][1] == len(outer)


def test_truncated_exif_jpeg_yields_its_thumbnail(samples: dict, plant: Callable, carve_all: Callable) -> None:
    """When the outer image is cut, the intact thumbnail is the valid object at its offset."""
    outer = samples["jpeg_exif_thumb"][0]
    thumb_at = outer.index(b"\xff\xd8\xff", 2)
    thumb_len = outer.index(b"\xff\xd9", thumb_at) + 2 - thumb_at
    cut = outer[: len(outer) - 100]
    data, _ = plant([(cut, None)], filler="zeros")
    found = carve_all(data)
    assert [(o, n, t) for o, n, _, t in found] == [(3001 + thumb_at, thumb_len, "jpeg")]


@pytest.mark.parametrize("name", JPEGS)
@pytest.mark.parametrize("where", [0.1, 0.5, 0.9, -2])
@pytest.mark.parametrize("filler", ["random", "zeros", "end"])
def test_truncated_is_not_reported(samples: dict, jpeg: registry.Carver, name: str, where: float, filler: str) -> None:
    import random

    data = samples[name][0]
    cut = len(data) + int(where) if where < 0 else int(len(data) * where)
    tail = {"random": random.Random(cut).randbytes(4096), "zeros": bytes(4096), "end": b""}[filler]
    found = jpeg.carve(BytesReader(data[:cut] + tail), 0)
    if name == "jpeg_exif_thumb" and found is not None:
        pytest.fail(f"truncated EXIF JPEG carved as {found} bytes")
    assert found is None


def test_rejects_structure_errors(samples: dict, jpeg: registry.Carver) -> None:
    data = samples["jpeg"][0]
    sof = data.index(b"\xff\xc0")
    bad_sof = data[: sof + 9] + b"\x09" + data[sof + 10 :]  # component count disagrees with length
    no_sos = data[: data.index(b"\xff\xda")] + b"\xff\xd9"
    eoi_only = b"\xff\xd8\xff\xd9"
    for variant in (bad_sof, no_sos, eoi_only):
        assert jpeg.carve(BytesReader(variant), 0) is None


def test_erased_flash_after_header_is_fast(jpeg: registry.Carver) -> None:
    """Runs of 0xFF (erased flash) after a header cost one bounded search, not a byte walk."""
    data = b"\xff\xd8\xff" + b"\xff" * (8 << 20)
    assert jpeg.carve(BytesReader(data), 0) is None


@given(st.data())
def test_mutated_jpeg_is_none_or_bounded(samples: dict, jpeg: registry.Carver, mutate: Callable, data: Any) -> None:
    obj = mutate(samples[data.draw(st.sampled_from(JPEGS))][0], data)
    n = jpeg.carve(BytesReader(obj), 0)
    assert n is None or 0 < n <= len(obj)


def _padded(data: bytes, pad: int) -> bytes:
    """``data`` with COM segments of ``pad`` bytes in all after SOI: moves the entropy-coded data."""
    out, left = bytearray(data[:2]), pad
    while left > 0:
        body = min(left, 65533)
        out += b"\xff\xfe" + (body + 2).to_bytes(2, "big") + b"c" * body
        left -= body + 4
    return bytes(out + data[2:])


@pytest.mark.parametrize("pair", [b"\xff\x00", b"\xff\xd0", b"\xff\xd9"])
def test_marker_like_bytes_across_the_cursor_block(samples: dict, jpeg: registry.Carver, pair: bytes) -> None:
    """Stuffing (FF 00), a restart marker (FF D0) and the EOI itself with their FF as the last byte of
    the block the carver holds (BLOCK bytes from the SOI) and the second byte just after: the search
    inside the held block must not stop at the lone FF, nor miss an end that straddles the block."""
    import io

    from PIL import Image

    from triage.workers.carve.stream import BLOCK

    name = "jpeg" if pair != b"\xff\xd0" else "jpeg_restart"
    data = samples[name][0]
    scan_start = data.index(b"\xff\xda")
    at = data.index(pair, scan_start) if pair != b"\xff\xd9" else len(data) - 2
    shift = BLOCK - 1 - at  # where the pair's FF must move to; COM segments cost 4 bytes of header each
    pad = next(p for p in range(shift, shift - 16, -1) if len(_padded(data, p)) - len(data) == shift)
    moved = _padded(data, pad)
    assert moved[BLOCK - 1 : BLOCK + 1] == pair
    Image.open(io.BytesIO(moved)).load()  # still a JPEG Pillow decodes
    assert jpeg.carve(BytesReader(moved + b"\xff\xd9" + bytes(1000)), 0) == len(moved)
