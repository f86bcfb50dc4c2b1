"""The hash-set catalog: ``<home>/hashsets/catalog.sqlite``, the one record of what is installed.

The compiled arrays live in one folder per set; the catalog says which folder
is current, the set's category, and where its entries came from. Swapping a
set's content is "write a new folder, then repoint the catalog row in one
transaction", so a reader sees either the old index or the new one, never a
half-built one. Writers serialise on an ``flock`` of ``<home>/hashsets/.lock``;
readers open the database read-only and take no lock of ours.

The database stays in SQLite's default rollback-journal mode on purpose: every
commit then changes the main file's mtime, which is how
:class:`triage.rules.matcher.KnownItems` notices new sets with one ``stat``.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from triage.rules.errors import InputError

CATALOG = "catalog.sqlite"
#: categories a set can have, strongest first (the order lookups report)
CATEGORIES = ("known-bad", "notable", "known-good")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashset (
    name TEXT PRIMARY KEY,               -- as given to --name
    category TEXT NOT NULL,              -- known-bad | notable | known-good
    directory TEXT NOT NULL,             -- current index folder, relative to <home>/hashsets
    counts TEXT NOT NULL,                -- JSON {algorithm: distinct entries in the index}
    entry_categories INTEGER NOT NULL,   -- 1 when entries carry their own category (VICS, CSV)
    created_at TEXT NOT NULL,            -- ISO 8601 UTC
    updated_at TEXT NOT NULL             -- ISO 8601 UTC, last import
);
CREATE TABLE IF NOT EXISTS source (
    hashset TEXT NOT NULL REFERENCES hashset(name) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,                -- of the imported file (of the content, for a folder)
    path TEXT NOT NULL,                  -- as imported, absolute
    format TEXT NOT NULL,                -- registry name, or "images" for a folder
    imported_at TEXT NOT NULL,           -- ISO 8601 UTC
    records INTEGER NOT NULL,            -- records read (valid + malformed)
    malformed INTEGER NOT NULL,          -- records skipped as malformed
    counts TEXT NOT NULL,                -- JSON {algorithm: entries this source supplied}
    PRIMARY KEY (hashset, sha256)
);
PRAGMA user_version = 1;
"""


@dataclass(frozen=True)
class SourceRecord:
    sha256: str
    path: str
    format: str
    imported_at: str
    records: int
    malformed: int
    counts: dict[str, int]


@dataclass(frozen=True)
class SetRecord:
    name: str
    category: str
    directory: str
    counts: dict[str, int]
    entry_categories: bool
    created_at: str
    updated_at: str
    sources: tuple[SourceRecord, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        """Plain data for ``hashsets list --json``."""
        return {
            "name": self.name, "category": self.category, "counts": self.counts,
            "entry_categories": self.entry_categories, "created_at": self.created_at,
            "updated_at": self.updated_at, "directory": self.directory,
            "sources": [s.__dict__ for s in self.sources],
        }


def _connect(root: Path, write: bool) -> sqlite3.Connection:
    path = root / CATALOG
    if write:
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("PRAGMA foreign_keys = ON")
        con.executescript(_SCHEMA)
        return con
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)


def read_sets(root: Path, con: sqlite3.Connection | None = None) -> list[SetRecord]:
    """Every set with its sources, by name; empty when nothing was ever imported."""
    if con is not None:
        return _read(con)
    if not (root / CATALOG).exists():
        return []
    try:
        with closing(_connect(root, write=False)) as ro:
            return _read(ro)
    except sqlite3.Error as exc:
        raise InputError(f"{root / CATALOG}: hash-set catalog unreadable: {exc}") from exc


def _read(con: sqlite3.Connection) -> list[SetRecord]:
    rows = con.execute(
        "SELECT name, category, directory, counts, entry_categories, created_at, updated_at FROM hashset ORDER BY name"
    ).fetchall()
    srcs = con.execute(
        "SELECT hashset, sha256, path, format, imported_at, records, malformed, counts FROM source ORDER BY imported_at"
    ).fetchall()
    by_set: dict[str, list[SourceRecord]] = {}
    for s in srcs:
        by_set.setdefault(s[0], []).append(SourceRecord(s[1], s[2], s[3], s[4], s[5], s[6], json.loads(s[7])))
    return [
        SetRecord(r[0], r[1], r[2], json.loads(r[3]), bool(r[4]), r[5], r[6], tuple(by_set.get(r[0], ())))
        for r in rows
    ]


def get_set(root: Path, name: str, con: sqlite3.Connection | None = None) -> SetRecord | None:
    return next((s for s in read_sets(root, con) if s.name == name), None)


@contextmanager
def writer(root: Path) -> Iterator[sqlite3.Connection]:
    """Exclusive access for one import or removal: the flock, then a catalog transaction."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with closing(_connect(root, write=True)) as con:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def save_set(con: sqlite3.Connection, record: SetRecord, source: SourceRecord | None, replace_sources: bool) -> None:
    """Insert or repoint a set row and record one more source (inside :func:`writer`)."""
    con.execute(
        "INSERT INTO hashset VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
        "category = excluded.category, directory = excluded.directory, counts = excluded.counts, "
        "entry_categories = excluded.entry_categories, updated_at = excluded.updated_at",
        (record.name, record.category, record.directory, json.dumps(record.counts, sort_keys=True),
         int(record.entry_categories), record.created_at, record.updated_at),
    )
    if replace_sources:
        con.execute("DELETE FROM source WHERE hashset = ?", (record.name,))
    if source is not None:
        con.execute(
            "INSERT OR REPLACE INTO source VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.name, source.sha256, source.path, source.format, source.imported_at,
             source.records, source.malformed, json.dumps(source.counts, sort_keys=True)),
        )


def delete_set(con: sqlite3.Connection, name: str) -> bool:
    """Remove a set's rows (inside :func:`writer`); False if there was no such set."""
    return con.execute("DELETE FROM hashset WHERE name = ?", (name,)).rowcount > 0
