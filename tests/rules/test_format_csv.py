"""CSV with a header naming the hash columns (any case, any punctuation), incl. phash and category."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from triage.rules.formats import detect_format, read_head
from triage.rules.formats.csvhash import CsvHashes


def test_csv_hits_exactly_with_entry_categories(tmp_path: Path, samples, imported) -> None:
    md5, sha1 = samples.hashes("md5", 50), samples.hashes("sha1", 50)
    path = tmp_path / "export.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["File Name", "SHA-1", "MD5 ", "Size", "Category"])
        for i in range(40):
            w.writerow([f"name, with comma {i}", sha1[i].upper(), md5[i] if i % 4 else "", i, i % 3])
    assert detect_format(path, read_head(path)).NAME == "csv"
    report, known = imported(path, "export")
    assert report.malformed == 0 and report.counts == {"md5": 30, "sha1": 40}
    assert [g[0] for g in known.lookup(sha1=sha1)] == ["known-bad"] * 40 + [None] * 10
    hits = known.hits(sha1=sha1[:6])
    assert [h[0].entry_category for h in hits] == [0, 1, 2, 0, 1, 2]
    assert [g[0] for g in known.lookup(md5=md5[:8])] == [None, "known-bad", "known-bad", "known-bad"] * 2


def test_tab_separated_phash_column(tmp_path: Path, imported) -> None:
    path = tmp_path / "refs.tsv"
    path.write_text("id\tphash\nref-1\t8f373714acfcf4d0\nref-2\tffffffff00000000\n")
    assert detect_format(path, read_head(path)).NAME == "csv"
    report, known = imported(path, "refs")
    assert report.counts == {"phash": 2}
    assert known.match_phash(["8f373714acfcf4d1", "0000000000000000"]) == [("refs:ref-1", 1), (None, None)]


def test_rows_without_values_or_bad_category() -> None:
    data = b"md5,category\n,1\nd41d8cd98f00b204e9800998ecf8427e,high\n"
    entries = list(CsvHashes().iter_entries(io.BytesIO(data)))
    assert [e.line for e in entries] == [2, 3]
    assert all(e.error for e in entries)
