"""hashdeep audit files: header, column line, ## comments, commas in file names."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from triage.rules.errors import HashSetFormatError
from triage.rules.formats import detect_format, read_head
from triage.rules.formats.hashdeep import HashDeep


def write_hashdeep(path: Path, files: list[Path], samples) -> None:
    lines = ["%%%% HASHDEEP-1.0", "%%%% size,md5,sha256,filename", "## Invoked from: /evidence", "## $ hashdeep -r .", "##"]
    for f in files:
        lines.append(f"{f.stat().st_size},{samples.digest(f, 'md5')},{samples.digest(f, 'sha256')},{f}")
    path.write_text("\n".join(lines) + "\n")


def test_hashdeep_hits_exactly(tmp_path: Path, samples, imported) -> None:
    files = samples.files(tmp_path / "ev", 25)
    comma = tmp_path / "ev" / "a,b,c.txt"
    comma.write_bytes(b"commas in the name")
    files.append(comma)
    audit = tmp_path / "known.hashdeep"
    write_hashdeep(audit, files, samples)
    assert detect_format(audit, read_head(audit)).NAME == "hashdeep"
    report, known = imported(audit, "hd", "notable")
    assert report.malformed == 0 and report.counts == {"md5": 26, "sha256": 26}
    got = known.lookup(md5=[samples.digest(f, "md5") for f in files], sha256=[None] * 26)
    assert all(g == ("notable", ["hd"]) for g in got)
    got = known.lookup(sha256=[samples.digest(f, "sha256") for f in files])
    assert all(g == ("notable", ["hd"]) for g in got)
    assert known.lookup(sha1=[samples.digest(files[0], "sha1")]) == [(None, [])]  # not in the audit


def test_parsing_details() -> None:
    data = b"%%%% HASHDEEP-1.0\n%%%% size,sha1,filename\n## c\n3,a9993e364706816aba3e25717850c26c9cd0d89d,x,y.txt\nbroken\n"
    entries = list(HashDeep().iter_entries(io.BytesIO(data)))
    assert entries[0].sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d" and entries[0].name == "x,y.txt"
    assert entries[1].error is not None and entries[1].line == 5


def test_missing_or_useless_column_line() -> None:
    with pytest.raises(HashSetFormatError, match="without a"):
        list(HashDeep().iter_entries(io.BytesIO(b"%%%% HASHDEEP-1.0\n1,abc,x\n")))
    with pytest.raises(HashSetFormatError, match="no md5, sha1 or sha256"):
        list(HashDeep().iter_entries(io.BytesIO(b"%%%% HASHDEEP-1.0\n%%%% size,tiger,filename\n")))
