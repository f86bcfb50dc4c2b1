"""NSRL RDSv3 SQLite releases, minimal (FILE table) and full (FILE view over METADATA) editions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from triage.rules.errors import HashSetFormatError
from triage.rules.formats import detect_format, read_head

from triage_test_fixtures.hashsets import make_rds  # noqa: E402


@pytest.mark.parametrize("full", [False, True], ids=["minimal", "full"])
def test_rdsv3_hits_exactly(tmp_path: Path, samples, imported, full: bool) -> None:
    s256, s1, m5 = samples.hashes("sha256", 80), samples.hashes("sha1", 80), samples.hashes("md5", 80)
    path = tmp_path / "RDS_2024.03.1_modern_minimal.db"
    make_rds(path, list(zip(s256[:60], s1[:60], m5[:60])), full=full)
    assert detect_format(path, read_head(path)).NAME == "nsrl-rdsv3"
    report, known = imported(path, "nsrl", "known-good")
    assert report.format == "nsrl-rdsv3" and report.malformed == 0
    assert report.counts == {"md5": 60, "sha1": 60, "sha256": 60}
    for algorithm, values in (("sha256", s256), ("sha1", s1), ("md5", m5)):
        got = known.lookup(**{algorithm: values})
        assert [g[0] for g in got] == ["known-good"] * 60 + [None] * 20


def test_truncated_rds_is_one_line_and_changes_nothing(tmp_path: Path, samples, imported, home: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("\n".join(samples.hashes("sha1", 10)) + "\n")
    imported(good, "nsrl", "known-good")
    path = tmp_path / "rds.db"
    make_rds(path, list(zip(samples.hashes("sha256", 3000), samples.hashes("sha1", 3000), samples.hashes("md5", 3000))))
    data = path.read_bytes()
    cut = tmp_path / "cut.db"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(HashSetFormatError, match=r"cut.db: truncated SQLite database") as info:
        imported(cut, "nsrl", "known-good")
    assert "\n" not in str(info.value)
    odd = tmp_path / "odd.db"
    odd.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(HashSetFormatError, match="odd.db: truncated"):
        imported(odd, "nsrl", "known-good")
    _, known = imported(good, "nsrl", "known-good")  # a no-op: still the first import only
    assert known.lookup(sha1=samples.hashes("sha1", 10))[0] == ("known-good", ["nsrl"])


def test_not_sqlite_or_not_rds(tmp_path: Path, imported) -> None:
    fake = tmp_path / "fake.db"
    fake.write_bytes(b"this is not a database at all\n" * 100)
    with pytest.raises(HashSetFormatError, match="fake.db: not an SQLite database"):
        imported(fake, "x", "known-good", fmt="nsrl-rdsv3")
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.commit()
    con.close()
    with pytest.raises(HashSetFormatError, match="other.db: SQLite database without a FILE table"):
        imported(other, "x", "known-good")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\x00" + b"\x10\x00" + b"\xff" * (4096 - 18))
    with pytest.raises(HashSetFormatError, match="garbage.db: "):
        imported(garbage, "x", "known-good")
