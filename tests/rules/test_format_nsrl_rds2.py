"""NSRL RDS 2.x NSRLFile.txt: the quoted CSV with the legacy header."""

from __future__ import annotations

import io
from pathlib import Path

from triage.rules.formats import detect_format, read_head
from triage.rules.formats.nsrl_rds2 import NsrlRds2

HEADER = '"SHA-1","MD5","CRC32","FileName","FileSize","ProductCode","OpSystemCode","SpecialCode"'


def write_rds2(path: Path, sha1: list[str], md5: list[str]) -> None:
    lines = [HEADER]
    for i, (s, m) in enumerate(zip(sha1, md5)):
        name = f"file{i}.dll" if i % 7 else f'odd "quoted", name {i}.dll'
        quoted = name.replace('"', '""')
        lines.append(f'"{s.upper()}","{m.upper()}","0000ABCD","{quoted}",{i * 10},{i % 5},"362",""')
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def test_nsrl_rds2_hits_exactly(tmp_path: Path, samples, imported) -> None:
    sha1, md5 = samples.hashes("sha1", 60), samples.hashes("md5", 60)
    path = tmp_path / "NSRLFile.txt"
    write_rds2(path, sha1[:50], md5[:50])
    assert detect_format(path, read_head(path)).NAME == "nsrl-rds2"
    report, known = imported(path, "nsrl", "known-good")
    assert report.malformed == 0 and report.counts == {"md5": 50, "sha1": 50}
    assert [g[0] for g in known.lookup(sha1=sha1)] == ["known-good"] * 50 + [None] * 10
    assert [g[0] for g in known.lookup(md5=md5)] == ["known-good"] * 50 + [None] * 10


def test_other_column_order_uses_csv() -> None:
    data = (
        b'"MD5","SHA-1","FileName"\n'
        b'"D41D8CD98F00B204E9800998ECF8427E","DA39A3EE5E6B4B0D3255BFEF95601890AFD80709","x"\n'
        b'"only-one-field\n'
    )
    entries = list(NsrlRds2().iter_entries(io.BytesIO(data)))
    assert entries[0].md5 == "D41D8CD98F00B204E9800998ECF8427E"
    assert entries[0].sha1 == "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"
    assert entries[1].error is not None and entries[1].line == 3
