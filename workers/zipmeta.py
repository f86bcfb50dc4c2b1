"""Zip member metadata read one way wherever a zip is met: a phone extraction given as the source
(:mod:`triage.workers.formats.zip`) and a zip found inside evidence (:mod:`triage.workers.archives`),
so the same member gets the same name and times in both.

Names are the stored bytes (zipfile decodes UTF-8-flagged names as UTF-8, others as cp437;
re-encoding gives the bytes back). Times, UTC: the extended-timestamp extra field (0x5455,
Unix seconds), else the NTFS extra field (0x000a, FILETIME), else the DOS date and time,
which carry no zone and are read as UTC; an impossible DOS date (month or day 0) is no time.
"""

from __future__ import annotations

import datetime as dt
import struct
import zipfile

FILETIME_EPOCH = 116444736000000000  # 1601-01-01 in 100 ns units before the Unix epoch


def filetime(ticks: int) -> int | None:
    """A Windows FILETIME (100 ns ticks since 1601, UTC: zip's NTFS field, 7z) as ns since 1970; None before 1970."""
    return (ticks - FILETIME_EPOCH) * 100 if ticks > FILETIME_EPOCH else None


def raw_name(info: zipfile.ZipInfo) -> bytes:
    """The name's bytes as stored: zipfile decodes UTF-8-flagged names as UTF-8, others as cp437."""
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "surrogateescape")


def zip_times(info: zipfile.ZipInfo) -> dict[str, int | None]:
    """mtime/atime/crtime in ns (UTC) from the extra fields, else the DOS time read as UTC."""
    extra, i, out = info.extra, 0, {}
    ntfs: dict[str, int] = {}
    while i + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4:i + 4 + length]
        i += 4 + length
        if tag == 0x5455 and body:  # extended timestamp; the central copy holds mtime only
            flags, k = body[0], 1
            for bit, name in ((1, "mtime"), (2, "atime"), (4, "crtime")):
                if flags & bit and len(body) >= k + 4:
                    out[name] = struct.unpack_from("<i", body, k)[0] * 1_000_000_000
                    k += 4
        elif tag == 0x000A and len(body) >= 32 and struct.unpack_from("<HH", body, 4) == (1, 24):
            m, a, c = struct.unpack_from("<QQQ", body, 8)
            ntfs = {n: (v - FILETIME_EPOCH) * 100 for n, v in (("mtime", m), ("atime", a), ("crtime", c)) if v}
    for k, v in ntfs.items():
        out.setdefault(k, v)
    if "mtime" not in out:
        try:
            out["mtime"] = int(dt.datetime(*info.date_time, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000_000
        except ValueError:  # a DOS date of month 0 or day 0
            pass
    return {"mtime": out.get("mtime"), "atime": out.get("atime"), "crtime": out.get("crtime")}
