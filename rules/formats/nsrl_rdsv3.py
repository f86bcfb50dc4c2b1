"""NSRL RDSv3: the SQLite releases (modern/android/ios/legacy, full and minimal).

Both editions expose a ``FILE`` relation with ``sha256, sha1, md5, crc32,
file_name, file_size, package_id``: a table in the minimal edition, a view over
``METADATA`` in the full one. Only the hash columns are read. When ``FILE`` is
a table its primary key starts with ``(sha256, sha1, md5)``, so ``SELECT
DISTINCT`` walks that index and hands back each hash once instead of once per
package (NSRL repeats a file in every package that ships it).

The database is opened read-only and ``immutable`` (no locks, no journal), and
its header is checked against the file size first, so a truncated download is
reported as such rather than as whatever page happens to be missing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from triage.rules.errors import HashSetFormatError
from triage.rules.formats import Entry, hashset_format

_MAGIC = b"SQLite format 3\x00"
_HASHES = ("sha256", "sha1", "md5")
_BATCH = 50_000


def check_header(path: Path, head: bytes) -> None:
    """Reject a file shorter than its SQLite header says (a truncated download)."""
    if len(head) < 100 or not head.startswith(_MAGIC):
        raise HashSetFormatError(f"{path}: not an SQLite database (no 'SQLite format 3' header)")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise HashSetFormatError(f"{path}: not an SQLite database (page size {page_size})")
    change_counter = int.from_bytes(head[24:28], "big")
    pages = int.from_bytes(head[28:32], "big")
    valid_for = int.from_bytes(head[92:96], "big")
    size = path.stat().st_size
    if size % page_size:
        raise HashSetFormatError(f"{path}: truncated SQLite database ({size} bytes, not whole {page_size}-byte pages)")
    if change_counter == valid_for and pages and size < pages * page_size:
        raise HashSetFormatError(f"{path}: truncated SQLite database ({size} bytes, header says {pages * page_size})")


@hashset_format("nsrl-rdsv3")
class NsrlRdsV3:
    NAME = "nsrl-rdsv3"
    DESCRIPTION = "NSRL RDSv3 SQLite release (FILE table or view: sha256, sha1, md5, ...)"
    PRIORITY = 10
    UNIT = "record"

    def sniff(self, head: bytes, path: Path) -> bool:
        return head.startswith(_MAGIC)

    def iter_entries(self, fileobj: BinaryIO) -> Iterator[Entry]:
        path = Path(getattr(fileobj, "name", ""))
        if not path.is_file():
            raise HashSetFormatError(f"{path}: an NSRL RDSv3 database must be a file on disk")
        fileobj.seek(0)
        check_header(path, fileobj.read(100))
        try:
            yield from self._rows(path)
        except sqlite3.Error as exc:
            raise HashSetFormatError(f"{path}: unreadable SQLite database: {exc}") from exc

    @staticmethod
    def _rows(path: Path) -> Iterator[Entry]:
        uri = f"file:{quote(str(path.absolute()))}?mode=ro&immutable=1"
        con = sqlite3.connect(uri, uri=True)
        try:
            kind = con.execute(
                "SELECT type FROM sqlite_master WHERE upper(name) = 'FILE' AND type IN ('table', 'view')"
            ).fetchone()
            if kind is None:
                raise HashSetFormatError(f"{path}: SQLite database without a FILE table: not an NSRL RDSv3 release")
            present = {str(r[1]).lower() for r in con.execute("PRAGMA table_info(FILE)")}
            columns = [c for c in _HASHES if c in present]
            if not columns:
                raise HashSetFormatError(f"{path}: NSRL FILE table has no sha256, sha1 or md5 column")
            distinct = "DISTINCT " if kind[0] == "table" else ""
            cursor = con.execute(f"SELECT {distinct}{', '.join(columns)} FROM FILE")  # noqa: S608 (fixed names)
            number = 0
            while rows := cursor.fetchmany(_BATCH):
                for row in rows:
                    number += 1
                    values = {c: v for c, v in zip(columns, row) if v is not None and v != ""}
                    bad = [c for c, v in values.items() if not isinstance(v, str)]
                    if bad:
                        yield Entry(number, error=f"{bad[0]} is not text")
                    elif values:
                        yield Entry(number, **values)
                    else:
                        yield Entry(number, error="no hash value")
        finally:
            con.close()
