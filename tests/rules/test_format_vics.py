"""Project VIC / CAID VICS JSON: cases with Media lists (1.x) and flat media (2.0)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from triage_test_fixtures.hashsets import vics_document

from triage.rules.errors import HashSetFormatError
from triage.rules.formats import detect_format, read_head


def test_vics_hits_exactly_and_keeps_categories(tmp_path: Path, samples, imported) -> None:
    md5, sha1 = samples.hashes("md5", 40), samples.hashes("sha1", 40)
    rng = random.Random(5)
    phash = [f"{rng.getrandbits(64):016x}" for _ in range(30)]
    path = tmp_path / "vics.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(vics_document(md5[:30], sha1[:30], phash), indent=1).encode())
    assert detect_format(path, read_head(path)).NAME == "vics"
    report, known = imported(path, "vic", "known-bad")
    assert report.malformed == 0 and report.counts == {"md5": 30, "sha1": 30, "phash": 30}
    assert [g[0] for g in known.lookup(md5=md5)] == ["known-bad"] * 30 + [None] * 10
    assert [g[0] for g in known.lookup(sha1=sha1)] == ["known-bad"] * 30 + [None] * 10
    assert [h[0].entry_category for h in known.hits(sha1=sha1[:8])] == [0, 1, 2, 3, 0, 1, 2, 3]
    near = f"{int(phash[7], 16) ^ 0b101:016x}"
    assert known.match_phash([near, phash[29]]) == [("vic:1007", 2), ("vic:1029", 0)]


def test_flat_vics2_shape(tmp_path: Path, samples, imported) -> None:
    md5 = samples.hashes("md5", 5)
    doc = {"@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media",
           "value": [{"MediaID": i, "Category": 1, "MD5": m} for i, m in enumerate(md5)]}
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(doc))
    report, known = imported(path, "vic2")
    assert report.counts == {"md5": 5}
    assert all(g == ("known-bad", ["vic2"]) for g in known.lookup(md5=md5))


@pytest.mark.parametrize("content,reason", [
    (b'{"value": [ {"MD5": "x"', "invalid JSON"),
    (b'{"odata.metadata": "x", "values": []}', "no top-level 'value' list"),
    (b'{"value": [1, 2, ' + b"[" * 100000 + b"]" * 100000 + b"]}", "invalid JSON"),
    (b'{"value": "\xff\xfe"}', "not UTF-8"),
])
def test_invalid_json_is_one_line(tmp_path: Path, imported, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(HashSetFormatError, match=f"bad.json: .*{reason}") as info:
        imported(path, "vic")
    assert "\n" not in str(info.value)
