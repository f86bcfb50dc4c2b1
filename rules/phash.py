"""64-bit perceptual hashes of images, computed the same way for references and evidence.

Both sides must hash identically or near-duplicates drift apart, so workers
hashing evidence images should call :func:`phash_file` too. The hash is
``imagehash.phash`` (8x8 DCT bits) written as 16 hex digits, which is also how
CSV and VICS files carry it; as an integer it is ``int(hex, 16)``.

Decoding is bounded: an image whose header declares more than ``max_pixels``
is refused before any pixel is decoded (a decompression bomb costs nothing),
and large JPEGs are decoded at a reduced DCT scale (``draft``), which is much
faster and changes the hash by at most a bit or two.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import imagehash
from PIL import Image, UnidentifiedImageError

from triage.rules.errors import ImageHashError


class DecompressionBombError(ImageHashError):
    """The image declares more pixels than the limit: refused before decoding."""

#: images declaring more pixels than this are refused (about 8000 x 6000)
DEFAULT_MAX_PIXELS = 50_000_000


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
            if image.format == "JPEG":
                image.draft("L", (256, 256))
            return str(imagehash.phash(image))
    except ImageHashError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DecompressionBombError(f"{label}: decompression bomb ({exc.__class__.__name__})") from exc
    except UnidentifiedImageError as exc:
        raise ImageHashError(f"{label}: not a readable image ({exc.__class__.__name__})") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # Pillow's ways of saying "corrupt"
        raise ImageHashError(f"{label}: cannot decode image: {exc}") from exc
