"""The ranking rules as pure functions: rule files, conditions, the arithmetic, tiers, determinism."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triage.rules.conditions import glob_regex, match_globs
from triage.rules.device import device_ranking
from triage.rules.errors import RuleFileError
from triage.rules.ranking import rank_table, reasons_text
from triage.rules.rulefile import load_rules
from triage.workers.schema import FILES_SCHEMA

UTC = dt.timezone.utc


def _row(path: str, **kw) -> dict:
    base = {"partition": 0, "path": path, "name": path.rsplit("/", 1)[-1], "inode": 1, "type": "r/r", "size": 5000,
            "deleted": False, "source": "allocated", "status": "ok", "mtime": dt.datetime(2019, 1, 1, tzinfo=UTC)}
    return {**base, **kw}


ROWS = [
    _row("home/bob/Documents/a.txt", mime="text/plain"),
    _row("home/bob/Downloads/setup.dll", mime="image/jpeg", ext_mismatch=True),
    _row("Windows/System32/k.dll", mime="application/x-dosexec", known="known-good", hashset_hits=["nsrl"]),
    _row("home/bob/Pictures/nsrl.jpg", mime="image/jpeg", known="known-good", hashset_hits=["nsrl"], deleted=True,
         source="deleted", ext_mismatch=True),
    _row("Windows/Temp/x.jpg", mime="image/jpeg", known="known-bad", hashset_hits=["force"]),
    _row("DCIM/100/IMG_1.JPG", mime="image/jpeg", deleted=True, source="deleted", phash_match="refs:a.png",
         phash_distance=7),
    _row("usr/share/doc/x/README", mime="text/plain"),
    _row("home/bob/Documents/new.txt", mime="text/plain", mtime=dt.datetime(2024, 5, 30, tzinfo=UTC)),
    _row("home/bob", type="d/d", size=4096),
    _row("$Carved/000000001024.jpg", mime="image/jpeg", source="carved", deleted=True, inode=0),
    _row("Users/eve/AppData/Roaming/Signal/db.sqlite", mime="application/vnd.sqlite3"),
]


@pytest.fixture
def table() -> pa.Table:
    return pa.Table.from_pylist(ROWS, schema=FILES_SCHEMA)


def _by_path(t: pa.Table) -> dict[str, dict]:
    return {r["path"]: r for r in t.to_pylist()}


def test_reasons_add_up_to_every_score_and_tiers_band_the_scores(table):
    ranked = rank_table(table, load_rules())
    rules = load_rules()
    for r in ranked.to_pylist():
        assert sum(x["weight"] for x in r["reasons"]) == r["score"], r
        band = {"notable": (rules.notable, 100), "likely-notable": (rules.likely, rules.notable - 1),
                "unknown": (1, rules.likely - 1), "known-good": (0, 0)}[r["tier"]]
        assert band[0] <= r["score"] <= band[1], r


def test_signals_of_the_default_rules(table):
    rows = _by_path(rank_table(table, load_rules()))
    fired = {p: [x["rule"] for x in r["reasons"]] for p, r in rows.items()}
    assert rows["Windows/Temp/x.jpg"]["tier"] == "notable"  # known-bad wins over a system folder
    assert fired["Windows/Temp/x.jpg"][0] == "known-bad"
    assert rows["DCIM/100/IMG_1.JPG"]["tier"] == "notable"
    assert "near-duplicate-picture" in fired["DCIM/100/IMG_1.JPG"] and "deleted" in fired["DCIM/100/IMG_1.JPG"]
    assert "extension-mismatch" in fired["home/bob/Downloads/setup.dll"]
    assert "recent" in fired["home/bob/Documents/new.txt"] and "recent" not in fired["home/bob/Documents/a.txt"]
    assert "system-location" in fired["usr/share/doc/x/README"]
    assert "carved" in fired["$Carved/000000001024.jpg"]
    assert {"messaging-app", "chat-database"} <= set(fired["Users/eve/AppData/Roaming/Signal/db.sqlite"])
    assert "directory" in fired["home/bob"]


def test_known_good_is_never_above_an_unknown_file(table):
    rows = _by_path(rank_table(table, load_rules()))
    good = [r for r in rows.values() if r["tier"] == "known-good"]
    assert len(good) == 2  # one is a deleted, disguised picture in a user folder: still known-good
    assert max(r["score"] for r in good) < min(r["score"] for r in rows.values() if r["tier"] != "known-good")


def test_deterministic_to_the_byte(table):
    def written() -> bytes:
        buf = io.BytesIO()
        pq.write_table(rank_table(table, load_rules()), buf, compression="zstd")
        return buf.getvalue()

    assert written() == written()


def test_recent_is_relative_to_the_newest_activity_or_since(table):
    rules = load_rules()
    future = table.to_pylist()
    future.append(_row("home/bob/clock-wrong.txt", mtime=dt.datetime(2099, 1, 1, tzinfo=UTC)))
    t = pa.Table.from_pylist(future, schema=FILES_SCHEMA)
    now = dt.datetime(2025, 1, 1, tzinfo=UTC)
    rows = _by_path(rank_table(t, rules, now=now))  # 2099 is after 'now': not the newest activity
    assert "recent" in [x["rule"] for x in rows["home/bob/Documents/new.txt"]["reasons"]]
    rows = _by_path(rank_table(t, rules, since=dt.datetime(2018, 12, 31, tzinfo=UTC)))
    assert "recent" in [x["rule"] for x in rows["home/bob/Documents/a.txt"]["reasons"]]


def test_entropy_read_when_present_and_null_when_not(table):
    rules = load_rules()
    blob = _row("home/bob/vault.bin", mime="application/octet-stream", size=1 << 20)
    t = pa.Table.from_pylist([blob], schema=FILES_SCHEMA)
    assert "likely-encrypted" not in reasons_text(rank_table(t, rules).column("reasons")[0].as_py())  # null
    older = t.drop(["entropy"])  # a table from before the content pass measured entropy
    assert "likely-encrypted" not in reasons_text(rank_table(older, rules).column("reasons")[0].as_py())
    with_entropy = t.set_column(t.schema.get_field_index("entropy"), "entropy", pa.array([7.97], pa.float64()))
    row = rank_table(with_entropy, rules).to_pylist()[0]
    assert row["reasons"][0]["rule"] == "likely-encrypted" and "7.97 bits per byte" in row["reasons"][0]["reason"]
    zipped = with_entropy.set_column(with_entropy.schema.get_field_index("mime"), "mime", pa.array(["application/zip"]))
    assert "likely-encrypted" not in reasons_text(rank_table(zipped, rules).column("reasons")[0].as_py())


def test_vics_category_is_kept_in_the_reasons(table):
    cats = pa.array([1 if r["path"] == "Windows/Temp/x.jpg" else None for r in ROWS], pa.int32())
    rows = _by_path(rank_table(table, load_rules(), categories=cats))
    reasons = rows["Windows/Temp/x.jpg"]["reasons"]
    assert any(x["rule"] == "vics-category-1" and "category 1" in x["reason"] for x in reasons)


def test_a_table_from_before_ranking_gets_the_columns(table):
    old = table.drop(["score", "tier", "reasons"])
    ranked = rank_table(old, load_rules())
    assert ranked.schema.names[-3:] == ["score", "tier", "reasons"]


def test_device_ranking_counts(table):
    rules = load_rules()
    summary = device_ranking(rank_table(table, rules), rules)
    assert summary["tier"] == "notable" and summary["score"] == 100
    assert summary["counts"]["known_bad_exact"] == 1 and summary["counts"]["near_duplicates"] == 1
    assert summary["counts"]["known_good"] == 2
    assert summary["top_rules"][0]["files"] >= 1 and summary["reasons"][0].startswith("1 exact known-bad")


# ---------------------------------------------------------------- rule files


def _rules(tmp_path: Path, text: str):
    f = tmp_path / "mine.yaml"
    f.write_text(text)
    return load_rules(f), f


def test_extends_default_adds_and_replaces_and_zero_switches_off(tmp_path, table):
    rules, _ = _rules(tmp_path, "extends: default\nrules:\n"
                      "  - {name: readme, when: {name: README}, weight: 70, reason: a readme}\n"
                      "  - {name: system-location, when: {location: system}, weight: 0, reason: not here}\n")
    names = [r.name for r in rules.rules]
    assert "readme" in names and "system-location" not in names and "known-bad" in names
    assert len(rules.files) == 2 and rules.files[1]["extends"] == "default"
    rows = _by_path(rank_table(table, rules))
    assert rows["usr/share/doc/x/README"]["tier"] == "notable"


def test_extends_none_replaces(tmp_path):
    rules, _ = _rules(tmp_path, "extends: none\nrules:\n  - {name: only, when: {size: {min: 1}}, weight: 5, reason: x}\n")
    assert [r.name for r in rules.rules] == ["only"]


def test_state_dir_file_is_used_and_rules_flag_wins(tmp_path):
    (tmp_path / "ranking.yaml").write_text("rules:\n  - {name: from-home, when: {size: 1}, weight: 1, reason: x}\n")
    assert "from-home" in [r.name for r in load_rules(state=tmp_path).rules]
    other = tmp_path / "other.yaml"
    other.write_text("rules: []\n")
    assert "from-home" not in [r.name for r in load_rules(other, state=tmp_path).rules]


@pytest.mark.parametrize("text, line, words", [
    ("rules:\n  - name: a\n    when: {size: [1, 2}\n", 3, "invalid YAML"),
    ("rules:\n  - name: a\n    when: {size: 1}\n    weight: 5\n    reason: x\n    colour: red\n", 2, "unknown rule key 'colour'"),
    ("rules:\n  - name: a\n    when:\n      size: {above: 3}\n    weight: 5\n    reason: x\n", 4, "unknown operator 'above'"),
    ("rules:\n  - name: a\n    when: {size: 1}\n    weight: 500\n    reason: x\n", 2, "weight"),
    ("rules:\n  - name: a\n    when: {size: 1}\n    weight: 5\n", 2, "reason"),
    ("extends: mine\n", 1, "extends"),
    ("rules:\n  - name: a\n    when: {path: {regex: '('}}\n    weight: 5\n    reason: x\n", 3, "bad regex"),
])
def test_a_broken_rule_file_is_one_line_naming_file_and_line(tmp_path, text, line, words):
    with pytest.raises(RuleFileError) as err:
        _rules(tmp_path, text)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(tmp_path / "mine.yaml")) and f"line {line}:" in msg, msg
    assert words in msg, msg


def test_an_unknown_field_is_named_with_its_line_when_ranking(tmp_path, table):
    rules, f = _rules(tmp_path, "rules:\n  - name: a\n    when: {colour: red}\n    weight: 5\n    reason: x\n")
    with pytest.raises(RuleFileError, match=rf"^{f}: line 2: rule 'a': unknown field 'colour'"):
        rank_table(table, rules)


def test_the_shipped_rules_are_package_data():
    rules = load_rules()
    assert rules.files[0]["path"].endswith("default-rules.yaml") and len(rules.rules) >= 20
    assert {"known-bad", "near-duplicate-picture", "notable-set", "known-good", "extension-mismatch",
            "likely-encrypted", "deleted", "orphan", "carved", "user-location", "system-location", "recent",
            "picture", "video", "document", "archive", "chat-database", "executable"} <= {r.name for r in rules.rules}


def test_the_shipped_rules_read_the_same_through_libyaml_as_through_pyyaml():
    # the packaged default is parsed by libyaml (every run reads it); an examiner's file by PyYAML
    import yaml

    from triage.rules import rulefile

    def lines(node, path="") -> dict:
        out = {path: node.line} if isinstance(node, rulefile._Line) else {}
        for k, v in (node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()):
            out.update(lines(v, f"{path}/{k}"))
        return out

    text = rulefile.default_text()
    fast, slow = rulefile.parse(text, "d", packaged=True), rulefile.parse(text, "d")
    assert fast == slow and lines(fast) == lines(slow) and len(lines(fast)) > 40
    assert issubclass(rulefile._PackagedLoader, yaml.CSafeLoader) == yaml.__with_libyaml__
    assert not issubclass(rulefile._Loader, getattr(yaml, "CSafeLoader", ()))  # examiners' files: PyYAML's messages


# ---------------------------------------------------------------- globs


@pytest.mark.parametrize("glob, path, hit", [
    ("**/Documents/**", "Documents/a.txt", True),
    ("**/Documents/**", "Users/x/Documents/b/c.pdf", True),
    ("**/Documents/**", "Users/x/MyDocuments/c.pdf", False),
    ("Users/*/**", "users/Bob/Desktop/x", True),  # case ignored, as on Windows
    ("$*", "$MFT", True),
    ("$*", "a/$MFT", False),
    ("image/*", "image/jpeg", True),
    ("image/*", "image/x/y", False),
    ("Program Files (x86)/**", "Program Files (x86)/App/a.exe", True),
])
def test_globs(glob, path, hit):
    assert bool(match_globs(pa.array([path]), [glob])[0]) is hit, glob_regex([glob])


def test_ne_includes_missing_values(table):
    extra = pa.Table.from_pylist([_row("opt2/tool.exe", mime="application/x-dosexec"),
                                  _row("Windows/tool.exe", mime="application/x-dosexec")], schema=FILES_SCHEMA)
    rows = _by_path(rank_table(extra, load_rules()))
    assert "executable" in [x["rule"] for x in rows["opt2/tool.exe"]["reasons"]]  # in no known location
    assert "executable" not in [x["rule"] for x in rows["Windows/tool.exe"]["reasons"]]


def test_an_empty_device_ranks_to_an_empty_table_and_an_unknown_device():
    rules = load_rules()
    ranked = rank_table(FILES_SCHEMA.empty_table(), rules)
    assert ranked.num_rows == 0 and ranked.schema.names[-3:] == ["score", "tier", "reasons"]
    summary = device_ranking(ranked, rules)
    assert (summary["tier"], summary["score"], summary["reasons"]) == ("unknown", 0, [])
