"""GIF carver against Pillow's GIFs (still and animated): blocks and sub-blocks to the trailer."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.workers.carve import BytesReader, registry

GIFS = ["gif", "gif_animated"]


@pytest.fixture(scope="module")
def gif() -> registry.Carver:
    return registry.get("gif")


def test_animated_sample_has_several_frames(samples: dict) -> None:
    assert samples["gif_animated"][0].count(b"\x21\xf9\x04") >= 4  # one graphic control per frame


@pytest.mark.parametrize("name", GIFS)
def test_whole_object_length(samples: dict, gif: registry.Carver, name: str) -> None:
    data = samples[name][0]
    assert gif.carve(BytesReader(data + b";" * 10), 0) == len(data)


@pytest.mark.parametrize("filler", ["random", "zeros"])
@pytest.mark.parametrize("gap", [0, 3001])
def test_planted_exact_recall(samples: dict, plant: Callable, carve_all: Callable, filler: str, gap: int) -> None:
    data, truth = plant([samples[n] for n in GIFS] * 2, filler=filler, gap=gap)
    assert carve_all(data) == truth


@pytest.mark.parametrize("name", GIFS)
@pytest.mark.parametrize("where", [0.01, 0.5, 0.9, -1])
@pytest.mark.parametrize("filler", ["random", "zeros", "end"])
def test_truncated_is_not_reported(samples: dict, gif: registry.Carver, name: str, where: float, filler: str) -> None:
    data = samples[name][0]
    cut = len(data) + int(where) if where < 0 else int(len(data) * where)
    tail = {"random": random.Random(cut).randbytes(4096), "zeros": bytes(4096), "end": b""}[filler]
    assert gif.carve(BytesReader(data[:cut] + tail), 0) is None


def _gif(blocks: bytes, version: bytes = b"GIF89a") -> bytes:
    screen = struct.pack("<HHBBB", 2, 2, 0x80, 0, 0) + bytes(6)  # 2-entry global colour table
    return version + screen + blocks + b";"


IMAGE = b"\x2c" + struct.pack("<HHHHB", 0, 0, 2, 2, 0) + b"\x02\x02\x44\x01\x00"


def test_handmade_gifs(gif: registry.Carver) -> None:
    ok = _gif(IMAGE)
    assert gif.carve(BytesReader(ok), 0) == len(ok)
    assert gif.carve(BytesReader(_gif(IMAGE, b"GIF87a")), 0) == len(ok)
    assert gif.carve(BytesReader(_gif(b"")), 0) is None  # no image at all
    assert gif.carve(BytesReader(_gif(b"\x21\xf9\x05" + bytes(6) + IMAGE)), 0) is None  # bad GCE size
    assert gif.carve(BytesReader(_gif(b"\x21\x42\x01\x00\x00" + IMAGE)), 0) is None  # unknown label
    bad_code_size = IMAGE[:10] + b"\x0c" + IMAGE[11:]
    assert gif.carve(BytesReader(_gif(bad_code_size)), 0) is None


def test_image_data_larger_than_lzw_allows_is_rejected(gif: registry.Carver) -> None:
    """A 2x2 frame cannot need kilobytes of LZW data: the sign of a GIF cut into other data."""
    big = b"\x2c" + struct.pack("<HHHHB", 0, 0, 2, 2, 0) + b"\x02" + (b"\xff" + bytes(255)) * 8 + b"\x00"
    assert gif.carve(BytesReader(_gif(big)), 0) is None


@given(st.data())
def test_mutated_gif_is_none_or_bounded(samples: dict, gif: registry.Carver, mutate: Callable, data: Any) -> None:
    obj = mutate(samples[data.draw(st.sampled_from(GIFS))][0], data)
    n = gif.carve(BytesReader(obj), 0)
    assert n is None or 0 < n <= len(obj)
