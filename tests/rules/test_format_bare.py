"""One bare hash per line: algorithm by length, comments, exact hits and misses."""

from __future__ import annotations

from pathlib import Path

from triage.rules.formats import detect_format, read_head


def test_bare_list_hits_exactly(tmp_path: Path, samples, imported) -> None:
    md5 = samples.hashes("md5", 40)
    sha1 = samples.hashes("sha1", 40)
    sha256 = samples.hashes("sha256", 40)
    path = tmp_path / "list.txt"
    lines = ["# exported list", *md5[:20], *(h.upper() for h in sha1[:20]), "", *sha256[:20], *md5[:5]]
    path.write_text("\r\n".join(lines) + "\r\n")
    assert detect_format(path, read_head(path)).NAME == "bare"
    report, known = imported(path, "bare", "known-good")
    assert report.format == "bare" and report.malformed == 0
    assert report.counts == {"md5": 20, "sha1": 20, "sha256": 20}  # duplicates collapse
    got = known.lookup(md5=md5, sha1=sha1, sha256=sha256)
    assert [g[0] for g in got[:20]] == ["known-good"] * 20
    assert all(g == (None, []) for g in got[20:])
    # an MD5 value looked up as the wrong algorithm is a miss
    assert known.lookup(sha1=[md5[0] + "00000000"]) == [(None, [])]
