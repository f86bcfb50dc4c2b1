"""The reduced-decode pHash against its oracle, imagehash's full-decode ``phash``.

``triage.rules.phash`` decodes only what a 32x32 reduction needs and computes
the DCT as two matrix products; these tests pin it to imagehash (scipy's DCT,
full decode) where the two must agree exactly, and to within a couple of bits
where the reduced decode is allowed to differ.
"""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
import scipy.fftpack
from PIL import Image

from triage_test_fixtures.hashsets import jpeg, scene

from triage.rules.phash import phash_file, phash_pixels, phash_pixels_many


def _imagehash_bits(grey: np.ndarray) -> str:
    dct = scipy.fftpack.dct(scipy.fftpack.dct(grey, axis=0), axis=1)[:8, :8]
    return str(imagehash.ImageHash(dct > np.median(dct)))


def test_batched_dct_is_imagehash_bit_for_bit() -> None:
    grey = np.random.default_rng(11).integers(0, 256, (40, 32, 32)).astype(np.uint8)
    assert phash_pixels_many(grey) == [_imagehash_bits(g) for g in grey]
    assert phash_pixels(grey[3]) == _imagehash_bits(grey[3])


def test_one_picture_hashes_as_in_a_batch() -> None:
    """phash_pixels (one picture, every worker's path) and the batched DCT give the same bits,
    flat and near-flat pictures (coefficients at the rounding limit) included."""
    rng = np.random.default_rng(12)
    grey = np.concatenate([rng.integers(0, 256, (200, 32, 32)), np.full((3, 32, 32), 77),
                           77 + (rng.random((20, 32, 32)) < 0.01)]).astype(np.uint8)
    assert [phash_pixels(g) for g in grey] == phash_pixels_many(grey)


@pytest.mark.parametrize(("level", "expected"), [(0, "0000000000000000"), (77, "8000000000000000")])
def test_flat_pictures_hash_like_imagehash(level: int, expected: str) -> None:
    """No rounding noise in the AC coefficients: a flat picture is its DC bit only."""
    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (level, level, level)).save(buf, "PNG")
    assert phash_file(io.BytesIO(buf.getvalue())) == expected == str(imagehash.phash(Image.open(buf)))


def test_small_grey_pictures_are_not_resampled_differently() -> None:
    """A picture already 32x32 grey goes straight to the DCT, as imagehash's resize leaves it unchanged."""
    grey = np.random.default_rng(5).integers(0, 256, (32, 32)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, "L").save(buf, "PNG")
    assert phash_file(io.BytesIO(buf.getvalue())) == str(imagehash.phash(Image.fromarray(grey, "L")))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP"])
def test_large_pictures_stay_near_the_full_decode(fmt: str) -> None:
    """JPEGs are DCT-scaled (a bit or two from a full decode at most); other formats equal it exactly."""
    for seed in range(4):
        image = scene(seed).resize((1024, 768), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        if fmt == "GIF":
            image.convert("P", palette=Image.Palette.ADAPTIVE).save(buf, fmt)
        else:
            image.save(buf, fmt)
        full = imagehash.phash(Image.open(io.BytesIO(buf.getvalue())))
        ours = phash_file(io.BytesIO(buf.getvalue()))
        assert (int(ours, 16) ^ int(str(full), 16)).bit_count() <= (2 if fmt == "JPEG" else 0), (fmt, seed)


def test_jpeg_is_decoded_at_reduced_scale() -> None:
    """The reduction asks libjpeg for a scaled grey decode: what it sees is 1/8 of a 1024x1024 picture."""
    from triage.rules.phash import DRAFT_SIDE, reduce_image

    data = jpeg(scene(3).resize((1024, 1024)), 90)
    with Image.open(io.BytesIO(data)) as image:
        assert reduce_image(image).shape == (32, 32)
        assert image.size == (1024 // 8, 1024 // 8) == (DRAFT_SIDE, DRAFT_SIDE) and image.mode == "L"
