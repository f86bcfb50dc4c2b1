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


def _png_kinds() -> dict[str, bytes]:
    """PNGs of every colour type and depth, interlaced and not, and one with a tRNS colour."""
    import zlib

    rgb = scene(7).resize((300, 220), Image.Resampling.BICUBIC)
    out: dict[str, Image.Image | tuple] = {
        "rgb": rgb, "rgba": rgb.convert("RGBA"), "grey": rgb.convert("L"), "palette": rgb.convert("P"),
        "grey-alpha": rgb.convert("LA"), "grey-16": rgb.convert("I;16"), "bilevel": rgb.convert("1"),
    }
    kinds = {}
    for name, image in out.items():
        buf = io.BytesIO()
        image.save(buf, "PNG")
        kinds[name] = buf.getvalue()
    buf = io.BytesIO()
    rgb.save(buf, "PNG", transparency=(1, 2, 3))
    kinds["rgb-trns"] = buf.getvalue()
    # Adam7 interlacing (Pillow cannot write it): recompress the rows in the seven passes' order
    pixels = np.asarray(rgb)
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b"".join(b"".join(b"\0" + row.tobytes() for row in pixels[y0::dy, x0::dx])
                   for x0, y0, dx, dy in passes if pixels[y0::dy, x0::dx].size)
    ihdr = np.array([300, 220], ">u4").tobytes() + bytes([8, 2, 0, 0, 1])

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    kinds["rgb-interlaced"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                               + chunk(b"IEND", b""))
    return kinds


def test_pngs_hash_as_pillow_decodes_them() -> None:
    """8-bit grey/RGB/RGBA PNGs are decoded by libspng (cheaper), every other kind by Pillow; PNG being
    lossless, every hash is the one Pillow's decode gives, bit for bit."""
    from triage.rules import phash

    spng = []
    original = phash._png_pixels

    def spy(image, source):
        got = original(image, source)
        spng.append(got is not None)
        return got

    for name, data in _png_kinds().items():
        with Image.open(io.BytesIO(data)) as image:
            pillow = phash_pixels(phash.reduce_image(image))
        phash._png_pixels = spy
        try:
            assert phash_file(io.BytesIO(data)) == pillow, name
        finally:
            phash._png_pixels = original
        assert spng.pop() == (name in ("rgb", "rgba", "grey", "rgb-interlaced")), name


def test_a_truncated_png_is_still_refused() -> None:
    """libspng refusing a cut PNG leaves the answer to Pillow: 'cannot decode', as before."""
    from triage.rules.errors import ImageHashError

    data = _png_kinds()["rgb"]
    with pytest.raises(ImageHashError, match="cannot decode"):
        phash_file(io.BytesIO(data[: len(data) // 2]))
