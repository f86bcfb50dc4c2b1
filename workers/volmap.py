"""Volume byte -> image byte: the one translation every image offset in the results goes through.

A partition's bytes are one contiguous image range; a logical volume's are its
segments' ranges on the physical volume, in order; the plaintext of an unlocked
encrypted volume has no image offset at all (the image holds only ciphertext), so
there the map answers None rather than a number that points at the wrong bytes.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True)
class VolumeMap:
    """``extents``: the image ranges ``(start, length)`` holding the volume, in volume order; None = no image offsets."""

    extents: tuple[tuple[int, int], ...] | None

    @classmethod
    def linear(cls, start: int, length: int) -> VolumeMap:
        return cls(((start, length),))

    @classmethod
    def none(cls) -> VolumeMap:
        return cls(None)

    def _starts(self) -> list[int]:
        out, at = [], 0
        for _s, n in self.extents or ():
            out.append(at)
            at += n
        return out

    def offset(self, rel: int) -> int | None:
        """The image offset of volume byte ``rel``, or None (no image offset, or past the mapped extents)."""
        if self.extents is None:
            return None
        starts = self._starts()
        i = bisect_right(starts, rel) - 1
        if i < 0:
            return None
        start, length = self.extents[i]
        inside = rel - starts[i]
        if len(self.extents) == 1:  # a partition: a run past its end is still where it says (a truncated table)
            return start + inside
        return start + inside if inside < length else None

    def ranges(self, rel: int, length: int) -> list[tuple[int, int]]:
        """The image ranges of volume bytes ``[rel, rel + length)`` (empty when they have no image offset)."""
        if self.extents is None or length <= 0:
            return []
        if len(self.extents) == 1:
            return [(self.extents[0][0] + rel, length)]
        out, end = [], rel + length
        for vstart, (start, n) in zip(self._starts(), self.extents):
            lo, hi = max(rel, vstart), min(end, vstart + n)
            if lo < hi:
                out.append((start + lo - vstart, hi - lo))
        return out
