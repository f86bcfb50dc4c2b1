"""Evidence containers: recognise an image's format and open it read-only.

The formats themselves (raw, split raw, EWF, VMDK, VHD, VHDX, QCOW, and the
containers recognised but not read) live one per module in
``triage.workers.formats``, registered in :data:`FORMATS`. Here: ``identify``
(which format, which files, how big the media is), ``open_image`` (the TSK
image, cached per worker thread in a bounded LRU, see ``handles``) and
``iter_media`` (the decoded media stream the image hash reads).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytsk3

from triage.rules.errors import ImageError
from triage.workers import handles
from triage.workers.formats import FORMATS, TSK_ERRORS, ordered
from triage.workers.formats import oneline as _oneline
from triage.workers.formats.ewf import open_ewf
from triage.workers.refs import ImageRef
from triage.workers.pathmap import localize

__all__ = ["FORMATS", "TSK_ERRORS", "_oneline", "identify", "iter_media", "open_ewf", "open_image"]


def identify(path: str | os.PathLike[str]) -> ImageRef:
    """Describe the image at ``path``: format, the files it consists of, media size.

    Reads the file's ends, then lets the format measure its media (which also
    checks the stream opens and reads at both ends).
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():  # a folder source (an unpacked extraction): only formats that take directories
        for fmt in ordered():
            if fmt.DIRECTORY and (segs := fmt.segments(p, b"", b"")) is not None:
                ref = ImageRef(path=str(p), format=fmt.NAME, segments=tuple(segs), size=0)
                return ImageRef(path=str(p), format=fmt.NAME, segments=tuple(segs), size=fmt.measure(ref))
        raise ImageError(f"{p}: is a directory, not an image file")
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            head = f.read(4096)
            tail = b""
            if size >= 512:
                f.seek(size - 512)
                tail = f.read(512)
    except OSError as exc:
        raise ImageError(f"{p}: cannot be read: {exc.strerror or _oneline(exc)}") from exc
    if size == 0:
        raise ImageError(f"{p}: empty file (0 bytes), not an image")
    for fmt in ordered():
        segs = fmt.segments(p, head, tail)
        if segs is None:
            continue
        ref = ImageRef(path=str(p), format=fmt.NAME, segments=tuple(segs), size=0)
        try:
            media = fmt.measure(ref)
        except OSError as exc:
            raise ImageError(f"{p}: {fmt.NAME} image cannot be read: {_oneline(exc)}") from exc
        return ImageRef(path=str(p), format=fmt.NAME, segments=tuple(segs), size=media)
    raise ImageError(f"{p}: format not recognised")  # unreachable: raw accepts everything


def open_image(ref: ImageRef) -> pytsk3.Img_Info:
    """The TSK image for ``ref``, opened once per worker thread and reused while recently used."""

    def opener() -> pytsk3.Img_Info:
        try:
            return FORMATS.get(ref.format).open_tsk(localize(ref))  # this worker's path, its copy checked (pathmap)
        except OSError as exc:
            raise ImageError(f"{ref.path}: cannot be opened: {_oneline(exc)}") from exc

    return handles.images().get(ref, opener)


def iter_media(ref: ImageRef, chunk: int = 4 << 20) -> Iterator[bytes | memoryview]:
    """The image's decoded media bytes in order (for the image hash), streamed in bounded chunks.

    For a container (EWF, VMDK, VHD(X), QCOW) these are the device's bytes, not the
    container file's. A yielded chunk is only valid until the next one is asked for
    (raw formats reuse one buffer).
    """
    ref = localize(ref)  # this worker's path, its copy checked (triage.workers.pathmap)
    yield from FORMATS.get(ref.format).iter_media(ref, chunk)
