"""md5sum/sha1sum/sha256sum output, produced by the real coreutils tools (the oracle)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from triage.rules.formats import detect_format, read_head
from triage.rules.formats.md5sum import SumFile


@pytest.mark.parametrize("tool,algorithm", [("md5sum", "md5"), ("sha1sum", "sha1"), ("sha256sum", "sha256")])
def test_coreutils_output_hits_exactly(tmp_path: Path, samples, imported, tool: str, algorithm: str) -> None:
    files = samples.files(tmp_path / "evidence", 30)
    odd = tmp_path / "evidence" / "back\\slash\nnewline.bin"
    odd.write_bytes(b"odd name")
    files.append(odd)
    text = subprocess.run([tool, *map(str, files[:15])], check=True, capture_output=True).stdout
    binary = subprocess.run([tool, "-b", *map(str, files[15:])], check=True, capture_output=True).stdout
    assert b"\\" in binary.splitlines()[-1][:1]  # coreutils escaped the odd name
    listing = tmp_path / f"known.{tool}"
    listing.write_bytes(text + binary)
    assert detect_format(listing, read_head(listing)).NAME == "md5sum"
    report, known = imported(listing, tool)
    assert report.malformed == 0 and report.counts == {algorithm: len(files)}
    digests = [samples.digest(f, algorithm) for f in files]
    assert all(hit == ("known-bad", [tool]) for hit in known.lookup(**{algorithm: digests}))
    others = samples.files(tmp_path / "other", 5, seed=99)
    assert known.lookup(**{algorithm: [samples.digest(f, algorithm) for f in others]}) == [(None, [])] * 5


def test_names_are_unescaped_and_tagged_lines_read(tmp_path: Path) -> None:
    import io

    data = (
        b"\\d41d8cd98f00b204e9800998ecf8427e  dir\\\\file\\nname\n"
        b"SHA256 (a b.txt) = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        b"da39a3ee5e6b4b0d3255bfef95601890afd80709 *bin.exe\n"
        b"not a sum line\n"
    )
    entries = list(SumFile().iter_entries(io.BytesIO(data)))
    assert entries[0].name == "dir\\file\nname" and entries[0].md5 == "d41d8cd98f00b204e9800998ecf8427e"
    assert entries[1].name == "a b.txt" and entries[1].sha256 is not None
    assert entries[2].name == "bin.exe" and entries[2].sha1 is not None
    assert entries[3].error is not None and entries[3].line == 4
