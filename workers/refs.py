"""Small, serialisable descriptions of *where* evidence bytes are.

These travel through the scheduler; open handles never do (compare dfVFS path
specifications). Each validates itself when built, and pickles small (that is how
it reaches a worker). Offset 0 and inode 0 are valid values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from triage.rules.errors import TriageError


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise TriageError(f"invalid description: {what}")


@dataclass(frozen=True)
class ImageRef:
    """An evidence image: its first path, its container format and every segment in order."""

    path: str
    format: str
    segments: tuple[str, ...]
    size: int

    def __post_init__(self) -> None:
        _check(isinstance(self.path, str) and self.path != "", "ImageRef.path must be a non-empty str")
        _check(isinstance(self.format, str) and self.format != "", "ImageRef.format must be a non-empty str")
        object.__setattr__(self, "segments", tuple(self.segments))
        _check(len(self.segments) >= 1, "ImageRef.segments must list at least one file")
        _check(isinstance(self.size, int) and self.size >= 0, "ImageRef.size must be an int >= 0")


@dataclass(frozen=True)
class VolumeRef:
    """One partition (or the whole image when there is no volume system), in bytes."""

    image: ImageRef
    index: int
    offset: int
    length: int

    def __post_init__(self) -> None:
        _check(isinstance(self.index, int) and self.index >= 0, "VolumeRef.index must be an int >= 0")
        _check(isinstance(self.offset, int) and self.offset >= 0, "VolumeRef.offset must be an int >= 0")
        _check(isinstance(self.length, int) and self.length >= 0, "VolumeRef.length must be an int >= 0")


@dataclass(frozen=True)
class ContentItem:
    """One file's data attribute to read: ``inode`` plus the TSK attribute (type, id).

    ``attr_type`` is None for the default data attribute (a huge file is read in byte
    ranges by :class:`Segment` links, not by fields here). ``row`` is the file's row
    number in the walk table, used to join results back.
    """

    row: int
    inode: int
    attr_type: int | None
    attr_id: int | None
    size: int
    name: str

    def __post_init__(self) -> None:
        _check(isinstance(self.row, int) and self.row >= 0, "ContentItem.row must be an int >= 0")
        _check(isinstance(self.inode, int) and self.inode >= 0, "ContentItem.inode must be an int >= 0")
        _check(isinstance(self.size, int) and self.size >= 0, "ContentItem.size must be an int >= 0")


@dataclass(frozen=True)
class ContentOptions:
    """Limits for content tasks. No defaults here: the control plane reads them from
    ``triage.yaml`` (``content.*``) and passes them in, so they live in one place."""

    chunk_bytes: int
    magic_bytes: int
    max_image_bytes: int
    max_image_pixels: int

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            _check(isinstance(v, int) and v > 0, f"ContentOptions.{f.name} must be an int > 0")


@dataclass(frozen=True)
class PinnedSet:
    """One known-item set as it was when a run started: its index folder never changes."""

    name: str
    category: str
    directory: str                # index folder relative to <home>/hashsets
    algorithms: tuple[str, ...]   # which indexes the folder holds (md5, sha1, sha256, phash)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithms", tuple(self.algorithms))


@dataclass(frozen=True)
class KnownRef:
    """The known-item sets a run checks against, fixed when it starts (a snapshot), and the
    pHash match threshold. Sets imported or replaced mid-run are not seen by that run."""

    home: str
    max_distance: int
    sets: tuple[PinnedSet, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "sets", tuple(self.sets))
        _check(isinstance(self.home, str) and self.home != "", "KnownRef.home must be a non-empty str")
        _check(isinstance(self.max_distance, int) and 0 <= self.max_distance <= 64,
               "KnownRef.max_distance must be an int in 0..64")

    def categories(self) -> dict[str, str]:
        """Set name -> category, as of the snapshot."""
        return {s.name: s.category for s in self.sets}


@dataclass(frozen=True)
class ContentBatch:
    """Files of one filesystem whose content one task reads, bounded by total bytes."""

    volume: VolumeRef
    items: tuple[ContentItem, ...]
    options: ContentOptions
    known: KnownRef | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))

    @property
    def nbytes(self) -> int:
        return sum(i.size for i in self.items)


@dataclass(frozen=True)
class Segment:
    """Bytes ``[start, end)`` of one huge file: one link of a chain of tasks that hands the hash
    state, the byte histogram and the type found at the start from each link to the next,
    never content."""

    volume: VolumeRef
    item: ContentItem
    start: int
    end: int
    options: ContentOptions
    known: KnownRef | None = None
    state: bytes | None = None
    mime: str | None = None
    magic: str | None = None
    counts: tuple[int, ...] | None = None  # byte histogram so far (256 counts), for the entropy

    def __post_init__(self) -> None:
        _check(isinstance(self.start, int) and 0 <= self.start < self.end <= self.item.size,
               "Segment: need 0 <= start < end <= size")
        _check((self.start == 0) == (self.state is None), "Segment: a state exactly when start > 0")
        _check(self.counts is None or len(self.counts) == 256, "Segment: counts must hold 256 values")

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def last(self) -> bool:
        return self.end == self.item.size
