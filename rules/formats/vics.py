"""Project VIC / CAID VICS JSON (OData): ``{"value": [case, ...]}``.

Two shapes are read: VICS 1.x, where each case object in ``value`` has a
``Media`` list, and the flat VICS 2.0 export, where ``value`` holds the media
entries themselves. A media entry carries ``MD5``, ``SHA1`` (``SHA256`` when
present), an optional integer ``Category`` kept per entry, an optional
``MediaID`` used as the reference id, and optionally a 64-bit perceptual hash
under ``pHash`` / ``PerceptualHash`` (16 hex digits; key case ignored).
``Entry.line`` counts media records (1-based), since JSON has no useful lines.

The file is parsed whole with :mod:`json`: VICS exports are hundreds of
thousands of records, far below what would need a streaming parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from triage.rules.errors import HashSetFormatError
from triage.rules.formats import Entry, hashset_format

_KEYS = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "phash": "phash", "perceptualhash": "phash"}


@hashset_format("vics")
class Vics:
    NAME = "vics"
    DESCRIPTION = "Project VIC / CAID VICS JSON (OData 'value' list of cases with 'Media' entries)"
    PRIORITY = 40
    UNIT = "record"

    def sniff(self, head: bytes, path: Path) -> bool:
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        return start.startswith(b"{") and (b'"value"' in head or b"odata" in head)

    def iter_entries(self, fileobj: BinaryIO) -> Iterator[Entry]:
        name = getattr(fileobj, "name", "input")
        try:
            document = json.loads(fileobj.read().decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise HashSetFormatError(f"{name}: VICS file is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno} column {exc.colno}"
            raise HashSetFormatError(f"{name}: invalid JSON: {exc.msg} at {where}") from exc
        except RecursionError as exc:
            raise HashSetFormatError(f"{name}: invalid JSON: nested too deeply") from exc
        if not isinstance(document, dict) or not isinstance(document.get("value"), list):
            raise HashSetFormatError(f"{name}: not VICS JSON: no top-level 'value' list")
        number = 0
        for item in document["value"]:
            media = item.get("Media") if isinstance(item, dict) else None
            for record in media if isinstance(media, list) else [item]:
                number += 1
                yield self._media(number, record)

    @staticmethod
    def _media(number: int, record: Any) -> Entry:
        if not isinstance(record, dict):
            return Entry(number, error="media entry is not an object")
        fields: dict[str, Any] = {}
        for key, value in record.items():
            target = _KEYS.get(str(key).lower())
            if target is not None and value not in (None, ""):
                if not isinstance(value, str):
                    return Entry(number, error=f"{key} is not a string")
                fields[target] = value.strip()
        if not fields:
            return Entry(number, error="no MD5, SHA1, SHA256 or pHash")
        category = record.get("Category")
        if category is not None:
            if isinstance(category, str) and category.strip().isdigit():
                category = int(category)
            if isinstance(category, bool) or not isinstance(category, int):
                return Entry(number, error="Category is not an integer")
        media_id = record.get("MediaID")
        name = None if media_id is None else str(media_id)[:200]
        return Entry(number, name=name, category=category, **fields)
