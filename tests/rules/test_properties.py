"""Property tests: hostile bytes raise nothing but TriageError; written sets read back exactly."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.rules.errors import TriageError
from triage.rules.formats import Entry, get_format, load_builtin_formats
from triage.rules.formats._lines import MAX_LINE
from triage.rules.importer import import_hashset
from triage.rules.spill import Spill

TEXT_FORMATS = ["bare", "md5sum", "hashdeep", "nsrl-rds2", "csv", "vics"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# bytes that look a little like the real thing, so parsers get past their first checks
PREFIXES = [b"", b"%%%% HASHDEEP-1.0\n%%%% size,md5,sha1,filename\n", b'"SHA-1","MD5","CRC32","FileName"\n',
            b"md5,sha1,phash,category,name\n", b'{"value": [', b"d41d8cd98f00b204e9800998ecf8427e  ", b"\xef\xbb\xbf"]
hostile = st.builds(lambda p, b: p + b, st.sampled_from(PREFIXES), st.binary(max_size=2000))


def drain(fmt_name: str, data: bytes) -> list[Entry]:
    fmt = get_format(fmt_name)
    fmt.sniff(data[:65536], Path("x"))
    return list(fmt.iter_entries(io.BytesIO(data)))


@SETTINGS
@given(data=hostile, fmt_name=st.sampled_from(TEXT_FORMATS))
def test_text_formats_raise_only_triage_errors(data: bytes, fmt_name: str) -> None:
    try:
        entries = drain(fmt_name, data)
    except TriageError:
        return
    assert all(isinstance(e, Entry) and e.line >= 1 for e in entries)


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=5000), page=st.sampled_from([b"\x10\x00", b"\x02\x00", b"\x00\x01", b"\x13\x37"]))
def test_sqlite_format_raises_only_triage_errors(body: bytes, page: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rds.db"
        path.write_bytes(b"SQLite format 3\x00" + page + body)
        try:
            with open(path, "rb") as fh:
                list(get_format("nsrl-rdsv3").iter_entries(fh))
        except TriageError:
            pass


@settings(max_examples=40, deadline=None)
@given(data=hostile)
def test_whole_import_raises_only_triage_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(data)
        try:
            report = import_hashset(path, "fuzz", "notable", home=Path(tmp) / "home")
        except TriageError:
            return
        assert report.records > 0 and sum(report.counts.values()) > 0


def test_over_long_line_is_skipped_not_held() -> None:
    data = b"d41d8cd98f00b204e9800998ecf8427e\n" + b"a" * (5 * MAX_LINE) + b"\nda39a3ee5e6b4b0d3255bfef95601890afd80709\n"
    entries = drain("bare", data)
    assert [e.line for e in entries] == [1, 2, 3]
    assert entries[1].error == "line too long" and entries[2].sha1 is not None


hex_digest = st.sampled_from([16, 20, 32]).flatmap(lambda w: st.binary(min_size=w, max_size=w)).map(bytes.hex)
names = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\x00"), min_size=1, max_size=30)


@SETTINGS
@given(items=st.lists(st.tuples(hex_digest, names), min_size=1, max_size=30))
def test_md5sum_round_trip(items: list[tuple[str, str]]) -> None:
    lines = []
    for digest, name in items:  # written the way coreutils writes them
        escaped = "\\" in name or "\n" in name
        shown = name.replace("\\", "\\\\").replace("\n", "\\n") if escaped else name
        lines.append(("\\" if escaped else "") + f"{digest}  {shown}")
    entries = drain("md5sum", ("\n".join(lines) + "\n").encode())
    got = [(e.md5 or e.sha1 or e.sha256, e.name) for e in entries]
    assert got == [(d, n) for d, n in items]


@SETTINGS
@given(rows=st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.binary(min_size=20, max_size=20), names,
                               st.integers(0, 32767)), min_size=1, max_size=30))
def test_csv_and_vics_round_trip(rows: list[tuple[bytes, bytes, str, int]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["MD5", "SHA1", "FileName", "Category"])
    for m, s, n, c in rows:
        writer.writerow([m.hex(), s.hex().upper(), n.replace("\n", " "), c])
    entries = drain("csv", out.getvalue().encode())
    assert [(e.md5, e.sha1.lower(), e.category) for e in entries] == [(m.hex(), s.hex(), c) for m, s, _, c in rows]  # type: ignore[union-attr]
    doc = {"value": [{"Media": [{"MD5": m.hex(), "SHA1": s.hex(), "Category": c, "MediaID": n} for m, s, n, c in rows]}]}
    entries = drain("vics", json.dumps(doc).encode())
    assert [(e.md5, e.sha1, e.category, e.name) for e in entries] == [(m.hex(), s.hex(), c, n) for m, s, n, c in rows]


@SETTINGS
@given(value=st.one_of(st.none(), st.text(max_size=80)), algorithm=st.sampled_from(["md5", "sha1", "sha256", "phash"]))
def test_spill_admits_only_exact_width_hex(value: str | None, algorithm: str) -> None:
    width = {"md5": 16, "sha1": 20, "sha256": 32, "phash": 8}[algorithm]
    with tempfile.TemporaryDirectory() as tmp:
        spill = Spill(Path(tmp))
        ok = spill.add(Entry(1, **{algorithm: value}))
        spill.close()
        exact = value is not None and len(value) == 2 * width and all(c in "0123456789abcdefABCDEF" for c in value)
        assert ok == exact
        got = spill.arrays(algorithm)
        if exact:
            assert got is not None and bytes(got[0][0]) == bytes.fromhex(value)  # type: ignore[arg-type]
        else:
            assert got is None


def test_every_format_module_is_covered() -> None:
    assert set(load_builtin_formats()) == {*TEXT_FORMATS, "nsrl-rdsv3"}
