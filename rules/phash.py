"""64-bit perceptual hashes of images, computed the same way for references and evidence.

Both sides must hash identically or near-duplicates drift apart, so workers
hashing evidence images call :func:`phash_file` too (through
``triage.workers.content.perceptual_hash``), and so does the reference-folder
importer (``rules/imagedir.py``). The hash is the classic pHash that
``imagehash.phash`` computes (grey levels reduced to 32x32 with a Lanczos filter,
2-D DCT-II, the 8x8 lowest frequencies compared with their median), written as
16 hex digits, which is also how CSV and VICS files carry it; as an integer it
is ``int(hex, 16)``.

What it costs, and why not less (``tests/benchmarks/bench_phash.py`` measures
CPU per picture and the bit distance to imagehash's full-decode pHash):

* Only what the 32x32 reduction needs is decoded where a decoder can scale:
  JPEGs are decoded by libjpeg at 1/2, 1/4 or 1/8 scale straight to grey
  (``draft``: the DCT scaling skips most of the inverse transform and all colour
  conversion). PNG, GIF and the rest have no reduced-size decoder; 8-bit grey,
  RGB and RGBA PNGs are decoded by libspng (``pyspng``), ~1.7x cheaper than
  Pillow with the same pixels (PNG is lossless, so the hash is unchanged).
* The DCT is two small matrix products with a precomputed 8x32 cosine basis
  (only the 8 lowest frequencies are ever used), not two full FFT-based DCTs
  through scipy and imagehash's wrappers; a worker no longer imports scipy.
  :func:`phash_pixels_many` hashes a stack of reductions in one batched product.
* Work whose answer is known is skipped: a worker thread remembers the pHash of
  each content sha256 it hashed (``triage.workers.answers``), so duplicate files and
  a carved copy of a picture already seen are not decoded again.
* What is left is almost all the decoders' own work (a JPEG's entropy decoding,
  which costs the same at every scale; a PNG's inflate and unfiltering: measured
  on the run benchmark's mix, Pillow's decode alone is ~2.3 ms per JPEG at 1/8
  scale and ~4 ms per PNG, of ~3.2 and ~5.7 for the whole hash), so the hash
  costs about 1.2-1.3x less CPU than before on distinct pictures, not the 5x
  issue #11 hoped for. simplejpeg (same libjpeg-turbo, no Python decode loop)
  was measured 14% faster on the JPEGs and imagecodecs' PNG decoder 30% on the
  PNGs, with identical pixels: not worth a second decoder stack to keep safe. Shortcuts that change more pixels (a box
  pre-reduction before the Lanczos filter, 1/8-scale JPEG decodes to 32-64 px)
  were measured and rejected: on pictures whose DCT coefficients crowd the
  median they flip up to 20 bits, and references hashed before must keep
  matching. Measured again for issue #11 (bench_phash.py prints the split): on
  the benchmark's mix a JPEG costs ~2.2 ms decoding at 1/2-1/8 scale, ~0.35 ms
  Lanczos, ~0.07 ms DCT; a PNG ~4 ms decoding (inflate and unfiltering), ~0.6 ms
  Lanczos. Pillow's ``reducing_gap=8`` (an integer box reduction first, down to
  8x the target) keeps the distance to the full decode at median 0 / p99 4 / max 8,
  but saved only 3% CPU on the mix (interleaved) while changing 1.3% of the hashes
  of 1,000 varied pictures by up to 31 bits: rejected. Decoding in a thread pool
  would only shorten wall time (Pillow releases the GIL), not the CPU per picture.
  As it is, the hash equals imagehash's for every non-JPEG picture (within float
  rounding) and is a bit or two from it for JPEGs.
* The floor: bench_phash.py also times what no decoder can skip, a JPEG's
  entropy decoding (libjpeg-turbo at 1/8 scale, one DC value per block) and a
  PNG's inflate (zlib-ng). On the run benchmark's mix that alone is ~2.3 CPU ms
  per picture, ~2.5x the 0.9 ms issue #11's 5x asked for: no hash that decodes
  the pictures reaches it; this one costs ~1.4x the floor.

Decoding is bounded: an image whose header declares more than ``max_pixels``
is refused before any pixel is decoded (a decompression bomb costs nothing).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from triage.rules.errors import ImageHashError

#: side of the grey square the DCT runs on (imagehash: hash_size 8 x highfreq_factor 4)
SIDE = 32
#: side of the square of low frequencies kept: 8x8 = 64 bits
BITS_SIDE = 8
#: decoders that can scale down stop at this many pixels per side or more. Measured on the run
#: benchmark's JPEGs (interleaved, same pictures): 3.2 / 3.5 / 4.6 CPU ms at 64 / 128 / 256 (the
#: previous implementation's draft); distance to the full decode p99 8 / 4 / 4 bits, max 10 / 8 / 6
#: on varied JPEGs, p99 2 and max 2 at 128 and 256 on the benchmark's. 128 is the knee.
DRAFT_SIDE = 128


class DecompressionBombError(ImageHashError):
    """The image declares more pixels than the limit: refused before decoding."""


#: images declaring more pixels than this are refused (about 8000 x 6000)
DEFAULT_MAX_PIXELS = 50_000_000


@cache
def _basis() -> np.ndarray:
    """The first 8 rows of the unnormalised 32-point DCT-II matrix (scipy's ``dct`` type 2 / 2).

    A positive scale factor does not change which coefficients exceed the median,
    so scipy's factor 2 is left out.
    """
    k = np.arange(BITS_SIDE)[:, None]
    n = np.arange(SIDE)[None, :]
    return np.cos(np.pi * k * (2 * n + 1) / (2 * SIDE))


def phash_pixels(grey: np.ndarray) -> str:
    """The 16-hex pHash of one 32x32 grey-level array (any real dtype): :func:`phash_pixels_many`'s
    steps for one picture without the batch's reshapes and views (~70 of ~130 us per picture on
    the benchmark machine; every picture of a worker goes through here)."""
    c = _basis()
    flat = np.round((c @ grey.astype(np.float64) @ c.T).ravel(), 6)
    ordered = np.sort(flat)
    return np.packbits(flat > (ordered[31] + ordered[32]) / 2).tobytes().hex()


def phash_pixels_many(grey: np.ndarray) -> list[str]:
    """pHashes of an ``(n, 32, 32)`` stack at once: one batched DCT for many pictures.

    Row ``k``, column ``l`` of the result is the DCT along axis 0 then axis 1,
    exactly ``scipy.fftpack.dct(dct(x, axis=0), axis=1)[:8, :8] / 4``.
    """
    c = _basis()
    low = c @ grey.astype(np.float64) @ c.T                      # (n, 8, 8)
    # float rounding leaves ~1e-10 where the exact coefficient is 0 (a flat picture): round it
    # away so a flat picture hashes like imagehash's (DC bit only), not by rounding noise
    flat = np.round(low.reshape(len(low), -1), 6)
    # the median of 64 values is the mean of the 32nd and 33rd smallest, exactly as np.median
    # computes it, at a tenth of its per-call cost
    ordered = np.sort(flat, axis=1)
    bits = flat > ((ordered[:, 31] + ordered[:, 32]) / 2)[:, None]
    packed = np.packbits(bits, axis=1).view(">u8")[:, 0]
    return [f"{int(v):016x}" for v in packed]


def reduce_image(image: Image.Image) -> np.ndarray:
    """The 32x32 grey levels of an opened (not yet loaded) image, decoding no more than needed.

    ``draft`` is a no-op for formats without a scaled decoder, and for a JPEG it
    requests grey output and the largest DCT scale that still leaves at least
    128x128 pixels. What follows is imagehash's ``convert('L').resize(LANCZOS)``.
    """
    image.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
    grey = image if image.mode == "L" else image.convert("L")
    if grey.size != (SIDE, SIDE):
        # no box pre-reduction (``reducing_gap``): it saves ~1 ms on a 1 MP PNG, but on pictures
        # whose DCT coefficients crowd the median it flips up to 20 bits (bench_phash.py), and
        # references hashed before must keep matching
        grey = grey.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    return np.asarray(grey)


def _png_pixels(image: Image.Image, source: str | Path | BinaryIO) -> Image.Image | None:
    """The pixels of an 8-bit grey, RGB or RGBA PNG decoded by libspng (``pyspng``), as a Pillow image
    in the mode Pillow gives it, or None where Pillow decodes (any other PNG, or one libspng refuses).

    PNG is lossless, so both decoders give the same pixels and the hash is unchanged bit for bit
    (tests/rules/test_phash.py compares them); libspng's unfiltering is vectorised where Pillow's is
    a byte loop, which makes the decode ~1.7x cheaper (bench_phash.py). Palettes, 1/2/4/16-bit
    samples and a tRNS colour are left to Pillow, whose conversions of them are the reference.
    """
    if image.format != "PNG" or image.mode not in _SPNG_MODES or "transparency" in image.info:
        return None
    try:
        import pyspng
    except ImportError:       # an optional speed-up: Pillow decodes the same pixels
        return None
    if isinstance(source, io.BytesIO):
        data = source.getvalue()
    elif isinstance(source, (str, Path)):
        data = Path(source).read_bytes()
    else:
        source.seek(0)
        data = source.read()
    # IHDR: bit depth and colour type (0 grey, 2 RGB, 6 RGBA), the only ones taken here
    if data[12:16] != b"IHDR" or data[24] != 8 or _SPNG_MODES.get(image.mode) != data[25]:
        return None
    try:
        pixels = pyspng.load(data)
    except Exception:  # noqa: BLE001 - libspng's refusal (RuntimeError/ValueError): Pillow says why
        return None
    width, height = image.size
    if pixels.dtype != np.uint8 or pixels.shape[:2] != (height, width):
        return None
    return Image.fromarray(pixels, image.mode)


#: Pillow modes libspng decodes to the same pixels, with the PNG colour type each comes from
_SPNG_MODES = {"L": 0, "RGB": 2, "RGBA": 6}


def phash_file(source: str | Path | BinaryIO, max_pixels: int | None = None) -> str:
    """The 16-hex-digit phash of an image file (a path or a binary file object)."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    label = str(source) if isinstance(source, (str, Path)) else str(getattr(source, "name", "image"))
    try:
        # Pillow's own bomb check (a warning past ~89M pixels, an error past twice that)
        # runs inside open(); ours is lower and refuses before any pixel is decoded.
        with Image.open(source) as image:
            width, height = image.size
            if width * height > limit:
                raise DecompressionBombError(f"{label}: decompression bomb: {width}x{height} pixels is over "
                                             f"the limit of {limit}")
            decoded = _png_pixels(image, source)
            return phash_pixels(reduce_image(image if decoded is None else decoded))
    except ImageHashError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DecompressionBombError(f"{label}: decompression bomb ({exc.__class__.__name__})") from exc
    except UnidentifiedImageError as exc:
        raise ImageHashError(f"{label}: not a readable image ({exc.__class__.__name__})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # Pillow's ways of saying "corrupt"
        raise ImageHashError(f"{label}: cannot decode image: {exc}") from exc
