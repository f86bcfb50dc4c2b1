"""The container files' own hashes, beside the media hash.

For a container (E01, VMDK, VHD/VHDX, QCOW incl. parents, extents and backing
files) the image hash is taken over the decoded media stream (``iter_media``),
which is what another tool reading the same evidence reproduces; the files
themselves are what was received and stored, so each is hashed too, as it lies
on disk. Raw and split raw files *are* the media: their hash is the image hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from triage.rules.errors import ImageError
from triage.workers.formats import FORMATS
from triage.workers.refs import ImageRef

CHUNK = 4 << 20


@dataclass(frozen=True)
class FileDigest:
    path: str
    size: int
    md5: str
    sha256: str


def hash_container_files(ref: ImageRef) -> tuple[FileDigest, ...]:
    """md5 + sha256 of every file of a container image, in ``ref.segments`` order; () when the files are the media."""
    if FORMATS.get(ref.format).MEDIA_IS_FILES:
        return ()
    out = []
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    for seg in ref.segments:
        md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
        try:
            with open(seg, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    md5.update(view[:n])
                    sha256.update(view[:n])
                    size += n
        except OSError as exc:
            raise ImageError(f"{Path(seg)}: container file unreadable: {exc.strerror or exc}") from exc
        out.append(FileDigest(seg, size, md5.hexdigest(), sha256.hexdigest()))
    return tuple(out)
