"""Where an LVM2 logical volume's bytes lie on its physical volume, read from the volume group's metadata.

libvslvm reads a logical volume's bytes but does not tell where its segments lie
(its Python segment objects expose nothing), so an image offset inside a logical
volume would be a guess. This module reads the on-disk metadata itself, the way
``pvck``/``vgcfgbackup`` do: the label ('LABELONE' in one of the first four
sectors) points at the PV header (UUID, data and metadata areas); the metadata
area's header (magic `` LVM2 x[5A%r0N*>``) points at the current metadata text,
a small nested ``key = value`` language. Each segment of a linear (``striped``
with one stripe) logical volume maps ``extent_count`` extents from
``start_extent`` in the LV to extent ``N`` of a named physical volume.

What cannot be mapped (another PV of the group, several stripes, thin, RAID,
mirrors, unreadable metadata) gives None: an unknown offset, never a wrong one.
A mapped logical volume is also *read* through this map (``lvm.ExtentMedia``):
libvslvm 20260901 cannot open a logical volume of two or more segments (it fails
with "invalid physical volume value already set"), which every ``lvextend`` makes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Reader = Callable[[int, int], bytes]
SECTOR = 512
MDA_MAGIC = b" LVM2 x[5A%r0N*>"
#: the largest metadata text read (lvm2's default metadata area is 1 MiB)
MAX_TEXT = 4 << 20

_TOKEN = re.compile(r'\s*(?:#[^\n]*\n?|("(?:[^"\\]|\\.)*")|(-?\d+)|([A-Za-z0-9_.+-]+)|([={}\[\],]))', re.S)


def parse_text(text: str) -> dict[str, Any]:
    """The metadata text as nested dicts (sections), lists, ints and strs."""
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() in ("", "\x00"):
                break
            raise ValueError(f"unexpected text at character {pos}")
        pos = m.end()
        s, num, ident, punct = m.groups()
        if s is not None:
            tokens.append(("v", s[1:-1].replace('\\"', '"').replace("\\\\", "\\")))
        elif num is not None:
            tokens.append(("v", int(num)))
        elif ident is not None:
            tokens.append(("i", ident))
        elif punct is not None:
            tokens.append(("p", punct))
    out, i = _section(tokens, 0, top=True)
    return out


def _section(tokens: list, i: int, top: bool = False) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(tokens):
        kind, val = tokens[i]
        if kind == "p" and val == "}" and not top:
            return out, i + 1
        if kind != "i" or i + 1 >= len(tokens):
            raise ValueError(f"expected a name, got {val!r}")
        op = tokens[i + 1][1]
        if op == "{":
            out[val], i = _section(tokens, i + 2)
        elif op == "=":
            out[val], i = _value(tokens, i + 2)
        else:
            raise ValueError(f"expected '=' or '{{' after {val!r}")
    if not top:
        raise ValueError("unterminated section")
    return out, i


def _value(tokens: list, i: int) -> tuple[Any, int]:
    kind, val = tokens[i]
    if kind == "v":
        return val, i + 1
    if (kind, val) != ("p", "["):
        raise ValueError(f"expected a value, got {val!r}")
    items, i = [], i + 1
    while tokens[i] != ("p", "]"):
        if tokens[i] != ("p", ","):
            items.append(tokens[i][1])
        i += 1
    return items, i + 1


def _uuid(raw: bytes) -> str:
    s = raw.decode("ascii", "replace")
    return "-".join(s[a:b] for a, b in ((0, 6), (6, 10), (10, 14), (14, 18), (18, 22), (22, 26), (26, 32)))


@dataclass(frozen=True)
class LogicalVolume:
    group: str
    name: str
    identifier: str
    size: int
    extents: tuple[tuple[int, int], ...] | None = None  # image ranges, in LV order; None = cannot be mapped


def read_metadata(read: Reader, offset: int) -> tuple[str, str, dict[str, Any]] | None:
    """(this PV's UUID, group name, the volume group's metadata) of the physical volume at ``offset``, or None."""
    head = read(offset, 4 * SECTOR)
    for s in range(4):
        lab = head[s * SECTOR:(s + 1) * SECTOR]
        if lab[:8] == b"LABELONE" and lab[24:32] == b"LVM2 001":
            break
    else:
        return None
    pvh = s * SECTOR + struct.unpack_from("<I", lab, 20)[0]
    uuid = _uuid(head[pvh:pvh + 32])
    areas, at, lists = [], pvh + 40, 0
    while lists < 2 and at + 16 <= len(head):
        off, size = struct.unpack_from("<QQ", head, at)
        at += 16
        if off == 0 and size == 0:
            lists += 1
        elif lists == 1:
            areas.append((off, size))  # metadata areas come after the data areas
    for mda_off, mda_size in areas:
        mda = read(offset + mda_off, SECTOR)
        if mda[4:20] != MDA_MAGIC:
            continue
        start, size = struct.unpack_from("<QQ", mda, 24)
        loc_off, loc_size = struct.unpack_from("<QQ", mda, 40)
        if loc_size == 0 or loc_size > MAX_TEXT or start != mda_off:
            continue
        first = min(loc_size, size - loc_off)
        raw = read(offset + start + loc_off, first)
        if first < loc_size:  # the circular buffer wrapped: the rest follows the header
            raw += read(offset + start + SECTOR, loc_size - first)
        text = raw.rstrip(b"\x00").decode("utf-8", "replace")
        groups = {k: v for k, v in parse_text(text).items() if isinstance(v, dict)}
        if len(groups) == 1:
            name, vg = next(iter(groups.items()))
            return uuid, name, vg
    return None


def logical_volumes(read: Reader, offset: int) -> list[LogicalVolume] | None:
    """The group's logical volumes in metadata order, each with its image ranges where they can be mapped;
    None when the metadata cannot be read (the caller may still ask libvslvm)."""
    try:
        found = read_metadata(read, offset)
        if found is None:
            return None
        uuid, group, vg = found
        extent = int(vg["extent_size"]) * SECTOR
        pvs = {name: pv for name, pv in vg.get("physical_volumes", {}).items() if pv.get("id") == uuid}
        out = []
        for name, lv in vg.get("logical_volumes", {}).items():
            segs = sorted((v for k, v in lv.items() if k.startswith("segment") and isinstance(v, dict)),
                          key=lambda seg: int(seg["start_extent"]))
            size = sum(int(seg["extent_count"]) for seg in segs) * extent
            out.append(LogicalVolume(group, name, str(lv.get("id", "")), size, _extents(segs, pvs, extent, offset)))
        return out
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return None


def _extents(segs: list[dict], pvs: dict[str, dict], extent: int, offset: int) -> tuple[tuple[int, int], ...] | None:
    out: list[tuple[int, int]] = []
    at = 0
    for seg in segs:
        stripes = seg.get("stripes", [])
        if seg.get("type") != "striped" or int(seg.get("stripe_count", 0)) != 1 or not stripes or stripes[0] not in pvs:
            return None
        if int(seg["start_extent"]) != at:
            return None
        count = int(seg["extent_count"])
        start = offset + int(pvs[stripes[0]]["pe_start"]) * SECTOR + int(stripes[1]) * extent
        if out and out[-1][0] + out[-1][1] == start:
            out[-1] = (out[-1][0], out[-1][1] + count * extent)
        else:
            out.append((start, count * extent))
        at += count
    return tuple(out) if out else None


def lv_extents(read: Reader, offset: int, lv_name: str) -> tuple[tuple[int, int], ...] | None:
    """The image byte ranges ``(start, length)`` of logical volume ``lv_name``, in LV order, or None."""
    lvs = logical_volumes(read, offset) or []
    return next((lv.extents for lv in lvs if lv.name == lv_name), None)
