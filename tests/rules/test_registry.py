"""The hash-set format registry: decorator, duplicates, unknown names, sniffing order."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.rules import formats
from triage.rules.errors import HashSetFormatError, TriageError
from triage.rules.formats import FORMATS, detect_format, get_format, hashset_format, known_names, read_head

BUILTIN = {"nsrl-rdsv3", "nsrl-rds2", "hashdeep", "md5sum", "bare", "csv", "vics"}


def test_every_builtin_registered_with_its_parts() -> None:
    formats.load_builtin_formats()
    assert BUILTIN <= set(FORMATS.names())
    for name in BUILTIN:
        fmt = get_format(name)
        assert fmt.NAME == name and fmt.DESCRIPTION and fmt.UNIT in ("line", "record")
        assert callable(fmt.sniff) and callable(fmt.iter_entries)
    assert get_format("sha256sum").NAME == "md5sum"  # aliases
    assert {"sha1sum", "sha256sum"} <= set(known_names())


def test_duplicate_name_is_an_error() -> None:
    formats.load_builtin_formats()
    with pytest.raises(TriageError, match="registered twice"):

        @hashset_format("bare")
        class Another:  # pragma: no cover - never used
            pass

    with pytest.raises(TriageError, match="registered twice"):

        @hashset_format("brand-new", aliases=("sha1sum",))
        class AliasClash:  # pragma: no cover - never used
            pass

    assert "brand-new" not in FORMATS
    assert FORMATS.get("bare").__module__ == "triage.rules.formats.bare"


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(HashSetFormatError) as info:
        get_format("nope")
    message = str(info.value)
    assert "nope" in message and "nsrl-rdsv3" in message and "vics" in message and "\n" not in message


def test_empty_and_unknown_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(HashSetFormatError, match="empty.txt: empty file"):
        detect_format(empty, read_head(empty))
    prose = tmp_path / "notes.txt"
    prose.write_text("Dear examiner,\nthese are not hashes.\n")
    with pytest.raises(HashSetFormatError, match=r"notes.txt: unknown hash-set format \(known: .*\); name one with --format"):
        detect_format(prose, read_head(prose))


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(HashSetFormatError, match="cannot read"):
        read_head(tmp_path / "absent")
