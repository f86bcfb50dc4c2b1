"""Encrypted volumes: recognised per partition, never silently passed over.

When no filesystem opens on a partition, its first sectors are checked for the
headers of full-volume encryption (LUKS1/2, BitLocker incl. To Go, FileVault 2 /
Core Storage); failing those, a partition whose sampled bytes are all near 8 bits
of entropy is reported as possibly encrypted (or wiped with random data). What the
header tells without a key (type, UUID or GUID, cipher) goes into the status, so
the examiner knows which key to ask for; ``triage.workers.unlock`` opens the ones
a key was given for.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass

#: BitLocker's volume identifier GUID, as stored (mixed-endian) in a Windows 7+ / To Go volume header
BITLOCKER_GUID = uuid.UUID("4967d63b-2e29-4ad8-8399-f6a339e3d001").bytes_le
#: bytes sampled per place for the entropy test, and the bits/byte above which data looks encrypted
SAMPLE = 64 << 10
ENTROPY_BITS = 7.95


@dataclass(frozen=True)
class Encrypted:
    """What is known about an encrypted volume without its key."""

    kind: str           # 'LUKS1', 'LUKS2', 'BitLocker', 'BitLocker To Go', 'FileVault 2 (Core Storage)', 'unknown'
    identifier: str | None = None  # LUKS UUID / volume GUID where the header gives one
    details: str = ""   # cipher, what the entropy test found ...

    @property
    def unlockable(self) -> bool:
        return self.kind in ("LUKS1", "LUKS2", "BitLocker", "BitLocker To Go")

    def status(self, why: str = "no key given") -> str:
        """The partition's status in volumes.parquet (starts with 'encrypted')."""
        known = "; ".join(x for x in (f"id {self.identifier}" if self.identifier else "", self.details) if x)
        if self.kind == "unknown":
            return f"encrypted? no filesystem and {known}"
        return f"encrypted: {self.kind}" + (f" ({known})" if known else "") + f"; {why}"


def layer_of(enc: Encrypted) -> str:
    """The volumes.parquet ``layer`` of an encrypted volume: 'luks', 'bitlocker' or 'filevault'."""
    if enc.kind.startswith("LUKS"):
        return "luks"
    if enc.kind.startswith("BitLocker"):
        return "bitlocker"
    return "filevault" if enc.kind.startswith("FileVault") else "encrypted"


def _cstr(b: bytes) -> str:
    return b.split(b"\x00", 1)[0].decode("ascii", "replace")


def sniff(head: bytes) -> Encrypted | None:
    """The encryption a volume's first 4 KiB announce, or None."""
    if head.startswith(b"LUKS\xba\xbe"):
        version = int.from_bytes(head[6:8], "big")
        ident = _cstr(head[168:208]) or None
        if version == 1:
            return Encrypted("LUKS1", ident, f"cipher {_cstr(head[8:40])}-{_cstr(head[40:72])}, hash {_cstr(head[72:104])}")
        return Encrypted(f"LUKS{version}", ident, "")
    if head[3:11] == b"-FVE-FS-":
        return Encrypted("BitLocker", _guid(head, 160), "")
    if head[424:440] == BITLOCKER_GUID:
        return Encrypted("BitLocker To Go", _guid(head, 424), "")
    if head[88:90] == b"CS" and int.from_bytes(head[90:92], "little") == 1:
        return Encrypted("FileVault 2 (Core Storage)", None, "")
    return None


def _guid(head: bytes, at: int) -> str | None:
    raw = head[at:at + 16]
    return str(uuid.UUID(bytes_le=raw)) if len(raw) == 16 and any(raw) else None


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte."""
    if not data:
        return 0.0
    counts = [0] * 256
    for b in data:
        counts[b] += 1
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in counts if c)


def sniff_volume(read: Callable[[int, int], bytes], offset: int, length: int) -> Encrypted | None:
    """The encryption header at ``offset``, if any (no entropy test: cheap enough to run before opening a filesystem)."""
    try:
        return sniff(read(offset, min(4096, length)))
    except (OSError, RuntimeError):
        return None


def detect(read: Callable[[int, int], bytes], offset: int, length: int) -> Encrypted | None:
    """Encryption of the volume at ``offset`` (``length`` bytes) of an image read by ``read(offset, size)``.

    A header first; else five samples spread over the volume that are all high-entropy.
    A partition of zeros, a damaged filesystem or compressed files in plain sight fail the
    test somewhere; random wipes pass it, which is why the status carries a question mark.
    """
    try:
        found = sniff(read(offset, min(4096, length)))
        if found is not None or length < 5 * SAMPLE:
            return found
        places = [offset + i * (length - SAMPLE) // 4 for i in range(5)]
        bits = [entropy(read(p, SAMPLE)) for p in places]
    except (OSError, RuntimeError):  # an unreadable stretch (truncated image): nothing to conclude
        return None
    if min(bits) >= ENTROPY_BITS:
        return Encrypted("unknown", None, f"high-entropy data throughout (min {min(bits):.3f} bits/byte over "
                                          f"{len(places)} samples): encrypted, or wiped with random data")
    return None
