"""Small, serialisable descriptions of *where* evidence bytes are.

These travel through the scheduler; open handles never do (compare dfVFS path
specifications). Each validates itself when built and round-trips through JSON,
so a job can be stored and resumed. Offset 0 and inode 0 are valid values.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

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

    ``attr_type`` is None for the default data attribute; ``start``/``end`` select a
    byte range so a huge file can be read by one task without the rest of its batch.
    ``row`` is the file's row number in the walk table, used to join results back.
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
    """Limits for content tasks, read from config by the control plane and passed in."""

    chunk_bytes: int = 4 << 20
    magic_bytes: int = 64 << 10
    max_image_bytes: int = 64 << 20
    max_image_pixels: int = 64_000_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            _check(isinstance(v, int) and v > 0, f"ContentOptions.{f.name} must be an int > 0")


@dataclass(frozen=True)
class KnownRef:
    """Where the known-item sets are (the state directory) and the pHash match threshold."""

    home: str
    max_distance: int = 10

    def __post_init__(self) -> None:
        _check(isinstance(self.home, str) and self.home != "", "KnownRef.home must be a non-empty str")
        _check(isinstance(self.max_distance, int) and 0 <= self.max_distance <= 64,
               "KnownRef.max_distance must be an int in 0..64")


@dataclass(frozen=True)
class ContentBatch:
    """Files of one filesystem whose content one task reads, bounded by total bytes."""

    volume: VolumeRef
    items: tuple[ContentItem, ...]
    options: ContentOptions = ContentOptions()
    known: KnownRef | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))

    @property
    def nbytes(self) -> int:
        return sum(i.size for i in self.items)


@dataclass(frozen=True)
class Segment:
    """Bytes ``[start, end)`` of one huge file: one link of a chain of tasks that hands the hash
    state (and the type found at the start) from each link to the next, never content."""

    volume: VolumeRef
    item: ContentItem
    start: int
    end: int
    options: ContentOptions = ContentOptions()
    known: KnownRef | None = None
    state: bytes | None = None
    mime: str | None = None
    magic: str | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.start, int) and 0 <= self.start < self.end <= self.item.size,
               "Segment: need 0 <= start < end <= size")
        _check((self.start == 0) == (self.state is None), "Segment: a state exactly when start > 0")

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def last(self) -> bool:
        return self.end == self.item.size


_TYPES = {c.__name__: c for c in (ImageRef, VolumeRef, ContentItem, ContentOptions, KnownRef, ContentBatch, Segment)}


def to_json(obj: Any) -> str:
    """Serialise a description (nested dataclasses, tuples) to canonical JSON."""

    def enc(o: Any) -> Any:
        if dataclasses.is_dataclass(o):
            d = {f.name: enc(getattr(o, f.name)) for f in dataclasses.fields(o)}
            d["__type__"] = type(o).__name__
            return d
        if isinstance(o, (list, tuple)):
            return [enc(x) for x in o]
        if isinstance(o, bytes):
            return {"__bytes__": o.hex()}
        return o

    return json.dumps(enc(obj), sort_keys=True, separators=(",", ":"))


def from_json(text: str) -> Any:
    """Inverse of :func:`to_json`."""

    def dec(o: Any) -> Any:
        if isinstance(o, dict) and "__bytes__" in o:
            return bytes.fromhex(o["__bytes__"])
        if isinstance(o, dict):
            kind = o.pop("__type__", None)
            vals = {k: dec(v) for k, v in o.items()}
            if kind is None:
                return vals
            if kind not in _TYPES:
                raise TriageError(f"invalid description: unknown type {kind!r}")
            return _TYPES[kind](**vals)
        if isinstance(o, list):
            return tuple(dec(x) for x in o)
        return o

    return dec(json.loads(text))
