"""A folder of reference images as a hash-set source (``hashsets import DIR``).

Each regular file below the folder that Pillow can decode becomes one entry:
its MD5/SHA-1/SHA-256 (so exact copies hit too) and its 64-bit phash, named by
its path relative to the folder. Files that are not readable images are
skipped and listed, not counted as malformed: reference folders often hold a
README or thumbnails database next to the pictures.

The folder's identity for "same source imported twice" is a SHA-256 over the
sorted ``(relative path, file SHA-256)`` pairs, i.e. over its content.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from triage.rules.errors import ImageHashError
from triage.rules.formats import Entry
from triage.rules.phash import phash_file

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class ImageFolder:
    """Walks a reference-image folder; ``digest`` and ``skipped`` are set once iterated."""

    NAME = "images"
    UNIT = "file"

    def __init__(self, root: Path, max_pixels: int | None = None) -> None:
        self.root = root
        self.max_pixels = max_pixels
        self.skipped: list[str] = []
        self._pairs: list[tuple[str, str]] = []

    def files(self) -> list[Path]:
        """Regular files below the folder, sorted; symbolic links are not followed."""
        found = []
        for top, dirs, names in os.walk(self.root):
            dirs.sort()
            for name in names:
                path = Path(top, name)
                if path.is_file() and not path.is_symlink():
                    found.append(path)
        return sorted(found)

    def iter_entries(self) -> Iterator[Entry]:
        for number, path in enumerate(self.files(), 1):
            rel = path.relative_to(self.root).as_posix()
            try:
                digests = _digests(path)
            except OSError as exc:
                self.skipped.append(f"{rel}: {exc.strerror or exc}")
                continue
            self._pairs.append((rel, digests["sha256"]))
            try:
                phash = phash_file(path, self.max_pixels)
            except ImageHashError as exc:
                self.skipped.append(f"{rel}: {str(exc).split(': ', 1)[-1]}")
                continue
            yield Entry(number, phash=phash, name=rel, **digests)

    def digest(self) -> str:
        """SHA-256 over the sorted (relative path, content SHA-256) pairs seen so far."""
        h = hashlib.sha256()
        for rel, sha in sorted(self._pairs):
            h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + sha.encode() + b"\n")
        return h.hexdigest()


def _digests(path: Path) -> dict[str, str]:
    md5 = hashlib.md5(usedforsecurity=False)  # identification, not security
    sha1 = hashlib.sha1(usedforsecurity=False)
    sha256 = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            md5.update(block)
            sha1.update(block)
            sha256.update(block)
    return {"md5": md5.hexdigest(), "sha1": sha1.hexdigest(), "sha256": sha256.hexdigest()}
