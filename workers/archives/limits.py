"""The bounds an expansion runs under. No defaults here: ``archives.*`` in triage.yaml."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from triage.rules.errors import TriageError


@dataclass(frozen=True)
class ArchiveLimits:
    depth: int           # archive levels expanded: 1 = the members of an archive found; 0 = none
    max_members: int     # rows one expansion (the archive found and every archive inside it) may add
    max_bytes: int       # member bytes one expansion may decompress and digest
    max_ratio: int       # expanded bytes per archive byte above which an archive is a bomb ...
    ratio_after: int     # ... once it has expanded this many bytes (small text archives compress well)
    nested_bytes: int    # an archive inside an archive is expanded from memory up to this size

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, int) or v < 0:
                raise TriageError(f"invalid description: ArchiveLimits.{f.name} must be an int >= 0")
