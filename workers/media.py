"""The whole-image hash (md5 + sha256 of the media stream) and, for E01, its stored-hash check.

One sequential task per image: a hash cannot be split, so the dispatcher gives
it the highest priority and it runs beside the walk and content tasks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from triage.rules.errors import ImageError
from triage.workers.image import _oneline, iter_media, open_ewf
from triage.workers.refs import ImageRef


@dataclass(frozen=True)
class MediaDigest:
    size: int
    md5: str
    sha256: str
    ewf_stored_md5: str | None = None
    ewf_stored_sha1: str | None = None
    ewf_verified: bool | None = None  # None: not an E01, or it stores no MD5
    error: str | None = None          # the stream could not be read to its end


def hash_media(ref: ImageRef) -> MediaDigest:
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    size = 0
    error = None
    try:
        for data in iter_media(ref):
            md5.update(data)
            sha256.update(data)
            size += len(data)
    except (OSError, RuntimeError, ImageError) as exc:
        error = f"media stream unreadable at byte {size}: {_oneline(exc)}"
    if size != ref.size and error is None:
        error = f"media stream is {size} bytes, expected {ref.size}"
    stored_md5 = stored_sha1 = verified = None
    if ref.format == "ewf":
        handle = open_ewf(ref)
        try:
            stored = {k.upper(): v for k, v in (handle.get_hash_values() or {}).items()}
        finally:
            handle.close()
        stored_md5 = (stored.get("MD5") or "").lower() or None
        stored_sha1 = (stored.get("SHA1") or "").lower() or None
        if stored_md5:
            verified = stored_md5 == md5.hexdigest() and error is None
    return MediaDigest(size, md5.hexdigest(), sha256.hexdigest(), stored_md5, stored_sha1, verified, error)
