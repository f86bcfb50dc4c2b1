"""Importing: malformed-record policy, merging, no-op re-imports, replacement and crash safety."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from triage.rules import importer
from triage.rules.errors import HashSetFormatError, InputError
from triage.rules.importer import import_hashset, list_hashsets, remove_hashset
from triage.rules.matcher import KnownItems


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_below_ratio_is_skipped_and_reported(tmp_path: Path, samples, imported) -> None:
    good = samples.hashes("sha1", 199)
    lines = good[:100] + [good[0][:-1]] + good[100:] + ["# comment", ""]
    report, known = imported(write_lines(tmp_path / "a.txt", lines), "a")
    assert (report.records, report.malformed) == (200, 1)
    assert report.examples == ("line 101: not a hash: 39 characters",)
    assert report.counts == {"sha1": 199}
    # the short value entered no index, under any algorithm or padding
    assert known.lookup(sha1=[good[0][:-1] + "0"], md5=[good[0][:32]]) == [(None, [])]


def test_malformed_above_ratio_fails_and_changes_nothing(tmp_path: Path, samples, imported, home: Path) -> None:
    first = samples.hashes("md5", 10)
    imported(write_lines(tmp_path / "first.txt", first), "s")
    good = samples.hashes("md5", 197, seed=1)
    lines = good[:50] + ["zz" * 16] + good[50:] + ["abc", "0" * 31]
    with pytest.raises(HashSetFormatError) as info:  # 3 of 200 is over 1% (2 of 200 would pass)
        imported(write_lines(tmp_path / "b.txt", lines), "s")
    message = str(info.value)
    assert "b.txt: 3 of 200 lines malformed (over 1% fails the import)" in message
    assert "line 51: md5 value has a non-hex character, not 32 hex digits" in message
    assert "line 199: not a hash" in message and "\n" not in message and "zz" not in message
    known = KnownItems.open(home)
    assert known.lookup(md5=first[:1] + good[:1]) == [("known-bad", ["s"]), (None, [])]
    assert [s.counts for s in list_hashsets(home)] == [{"md5": 10}]
    assert not any((home / "hashsets" / ".tmp").iterdir())


def test_any_malformed_fails_a_small_file(tmp_path: Path, samples, imported) -> None:
    lines = samples.hashes("sha256", 50) + ["12345"]
    with pytest.raises(HashSetFormatError, match=r"1 of 51 lines malformed \(any fails the import\)"):
        imported(write_lines(tmp_path / "c.txt", lines), "c")
    with pytest.raises(HashSetFormatError, match="no hashes found"):
        imported(write_lines(tmp_path / "d.hashdeep", ["%%%% HASHDEEP-1.0", "%%%% size,md5,filename"]), "d")


def test_merge_noop_and_replace(tmp_path: Path, samples, imported, home: Path) -> None:
    a, b = samples.hashes("md5", 20, seed=1), samples.hashes("md5", 20, seed=2)
    part1, part2 = write_lines(tmp_path / "p1.txt", a), write_lines(tmp_path / "p2.txt", b)
    imported(part1, "nsrl", "known-good")
    report, known = imported(part2, "nsrl", "known-good")
    assert report.counts == {"md5": 40} and not report.noop
    again, _ = imported(part1, "nsrl", "known-good")
    assert again.noop and again.counts == {"md5": 40}
    assert all(g[0] == "known-good" for g in known.lookup(md5=a + b))
    folders = list((home / "hashsets" / "nsrl").iterdir())
    assert len(folders) == 1  # the previous generation was removed
    with pytest.raises(InputError, match="'nsrl' is known-good, not known-bad"):
        imported(part1, "nsrl", "known-bad")
    report, known = imported(part1, "nsrl", "known-bad", replace=True)
    assert report.counts == {"md5": 20}
    assert [g[0] for g in known.lookup(md5=[a[0], b[0]])] == ["known-bad", None]
    (only,) = list_hashsets(home)
    assert [s.path for s in only.sources] == [str(part1)]


def test_bad_names_and_missing_sources(tmp_path: Path, imported) -> None:
    with pytest.raises(InputError, match="bad hash-set name"):
        imported(tmp_path, "../escape")
    with pytest.raises(InputError, match="bad category"):
        imported(tmp_path, "ok", "evil")
    with pytest.raises(HashSetFormatError, match="no such file or folder"):
        imported(tmp_path / "absent.txt", "ok")
    with pytest.raises(InputError, match="no hash set named 'ghost' \\(none installed\\)"):
        remove_hashset("ghost", tmp_path / "nohome")


def test_failed_build_leaves_old_index_usable(tmp_path: Path, samples, imported, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = samples.hashes("sha1", 30, seed=1), samples.hashes("sha1", 30, seed=2)
    _, known = imported(write_lines(tmp_path / "old.txt", old), "s")

    def explode(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(importer, "build", explode)
    with pytest.raises(OSError):
        imported(write_lines(tmp_path / "new.txt", new), "s")
    assert known.lookup(sha1=[old[0], new[0]]) == [("known-bad", ["s"]), (None, [])]
    assert not any((home / "hashsets" / ".tmp").iterdir())


CRASH = """
import os, sys
from triage.rules import catalog, importer
real = catalog.save_set
def crash(*a, **k):
    os._exit(9)  # killed between renaming the new index into place and the catalog commit
catalog.save_set = crash
importer.import_hashset(sys.argv[1], "s", "known-bad", home=sys.argv[2])
"""


def test_crash_mid_import_leaves_old_index_and_is_cleaned_up(tmp_path: Path, samples, imported, home: Path) -> None:
    old, new = samples.hashes("sha1", 30, seed=1), samples.hashes("sha1", 30, seed=2)
    imported(write_lines(tmp_path / "old.txt", old), "s")
    proc = subprocess.run([sys.executable, "-c", CRASH, str(write_lines(tmp_path / "new.txt", new)), str(home)])
    assert proc.returncode == 9
    assert len(list((home / "hashsets" / "s").iterdir())) == 2  # the orphan is there...
    known = KnownItems(home)
    assert known.lookup(sha1=[old[0], new[0]]) == [("known-bad", ["s"]), (None, [])]
    report, known = imported(tmp_path / "new.txt", "s")  # ...and the next import clears it
    assert report.counts == {"sha1": 60}
    assert len(list((home / "hashsets" / "s").iterdir())) == 1
    assert known.lookup(sha1=[old[0], new[0]]) == [("known-bad", ["s"]), ("known-bad", ["s"])]


def test_remove(tmp_path: Path, samples, imported, home: Path) -> None:
    values = samples.hashes("md5", 5)
    _, known = imported(write_lines(tmp_path / "x.txt", values), "x")
    assert known.lookup(md5=values[:1]) == [("known-bad", ["x"])]
    record = remove_hashset("x", home)
    assert record.name == "x" and not (home / "hashsets" / "x").exists()
    assert known.lookup(md5=values[:1]) == [(None, [])]
    assert import_hashset(tmp_path / "x.txt", "x", "notable", home=home).counts == {"md5": 5}
