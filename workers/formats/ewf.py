"""Expert Witness / EnCase images (E01, Ex01), single or multi-segment, read through libewf."""

from __future__ import annotations

from pathlib import Path

from triage.rules.errors import ImageError
from triage.workers.formats import HandleMedia, ImageFormat, Media, image_format, oneline
from triage.workers.formats.ewfchunks import EwfChunkMedia, chunk_map
from triage.workers.refs import ImageRef

EWF_SIGNATURES = (b"EVF\x09\x0d\x0a\xff\x00", b"EVF2\x0d\x0a\x81\x00")


def open_ewf(ref: ImageRef):  # -> pyewf.handle
    """A pyewf handle over every segment of ``ref`` (also used for the stored hashes)."""
    import pyewf

    handle = pyewf.handle()
    try:
        handle.open(list(ref.segments), "r")
    except (OSError, IOError) as exc:
        raise ImageError(f"{ref.path}: EWF image cannot be opened: {oneline(exc)}") from exc
    return handle


@image_format
class EwfFormat(ImageFormat):
    NAME = "ewf"
    DESCRIPTION = "Expert Witness / EnCase (E01, Ex01), single or multi-segment, via libewf"

    def segments(self, path: Path, head: bytes, tail: bytes) -> list[str] | None:
        if not head.startswith(EWF_SIGNATURES):
            return None
        import pyewf

        try:
            return sorted(pyewf.glob(str(path)))
        except OSError as exc:
            raise ImageError(f"{path}: EWF segments could not be listed: {oneline(exc)}") from exc

    def open_media(self, ref: ImageRef) -> Media:
        """libewf opens the set (and refuses a broken one); the chunks are then inflated by zlib where the
        table is understood (:mod:`ewfchunks`: libewf's own inflate is the slow part), libewf reading the rest."""
        handle = HandleMedia(open_ewf(ref))
        cmap = chunk_map(tuple(ref.segments))
        if cmap is None or cmap.media_size != handle.size:
            return handle
        return EwfChunkMedia(cmap, lambda: handle)
