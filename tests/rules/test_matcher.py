"""KnownItems, the API workers call: categories across sets, pickling, refresh, phash matching."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from triage.rules.matcher import Hit, KnownItems


def lines(path: Path, values: list[str]) -> Path:
    path.write_text("\n".join(values) + "\n")
    return path


@pytest.fixture
def three_sets(tmp_path: Path, samples, imported) -> tuple[KnownItems, list[str], list[str]]:
    md5, sha1 = samples.hashes("md5", 10), samples.hashes("sha1", 10)
    imported(lines(tmp_path / "good.txt", md5[0:6]), "nsrl", "known-good")
    imported(lines(tmp_path / "bad.txt", md5[3:5] + sha1[0:2]), "vic", "known-bad")
    _, known = imported(lines(tmp_path / "notable.txt", md5[4:8] + sha1[1:3]), "watch", "notable")
    return known, md5, sha1


def test_strongest_category_and_sorted_names(three_sets) -> None:
    known, md5, sha1 = three_sets
    got = known.lookup(md5=md5[:9], sha1=[sha1[0], sha1[1], sha1[2]] + [None] * 6)
    assert got == [
        ("known-bad", ["nsrl", "vic"]),      # md5 known-good, sha1 known-bad
        ("known-bad", ["nsrl", "vic", "watch"]),
        ("notable", ["nsrl", "watch"]),
        ("known-bad", ["nsrl", "vic"]),
        ("known-bad", ["nsrl", "vic", "watch"]),
        ("notable", ["nsrl", "watch"]),
        ("notable", ["watch"]),
        ("notable", ["watch"]),
        (None, []),
    ]
    assert known.sets() == {"nsrl": "known-good", "vic": "known-bad", "watch": "notable"}


def test_many_sets_path_gives_the_same_answers(three_sets, monkeypatch: pytest.MonkeyPatch) -> None:
    from triage.rules import matcher

    known, md5, sha1 = three_sets
    fast = known.lookup(md5=md5, sha1=sha1)
    monkeypatch.setattr(matcher, "_MASK_BITS", 1)
    assert known.lookup(md5=md5, sha1=sha1) == fast


def test_lookup_codes_agree_with_lookup(three_sets) -> None:
    from triage.rules.catalog import CATEGORIES

    known, md5, sha1 = three_sets
    category, sets, names = known.lookup_codes(md5=md5, sha1=sha1)
    assert names == ("nsrl", "vic", "watch")
    for (cat, in_sets), code, bits in zip(known.lookup(md5=md5, sha1=sha1), category.tolist(), sets.tolist()):
        assert (CATEGORIES[code] if code >= 0 else None) == cat
        assert [n for k, n in enumerate(names) if bits >> k & 1] == in_sets


def test_hits_detail(three_sets) -> None:
    known, md5, sha1 = three_sets
    (first,) = known.hits(md5=[md5[4]], sha1=[sha1[0]])
    assert first == [
        Hit("nsrl", "known-good", "md5", None),
        Hit("vic", "known-bad", "sha1", None),  # the stronger algorithm is named
        Hit("watch", "notable", "md5", None),
    ]


def test_batch_lengths_must_agree(three_sets) -> None:
    known, md5, sha1 = three_sets
    with pytest.raises(ValueError, match="differ in length"):
        known.lookup(md5=md5[:2], sha1=sha1[:3])
    assert known.lookup() == [] and known.lookup(md5=[]) == []


def test_no_sets_is_fast_and_touches_nothing(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    known = KnownItems.open(home)
    assert known.lookup(sha1=["00" * 20] * 100_000) == [(None, [])] * 100_000
    assert known.match_phash(["0" * 16] * 10) == [(None, None)] * 10
    assert known.sets() == {}
    assert not home.exists()


def test_open_is_shared_and_pickles_as_a_path(three_sets, home: Path) -> None:
    known, md5, _ = three_sets
    assert KnownItems.open(home) is known
    assert KnownItems.open(str(home)) is known
    data = pickle.dumps(known)
    assert len(data) < 300 and b"hashsets" not in data.replace(str(home).encode(), b"")
    assert pickle.loads(data) is known
    script = "import pickle, sys; k = pickle.loads(sys.stdin.buffer.read()); print(k.lookup(md5=[sys.argv[1]])[0][0])"
    out = subprocess.run([sys.executable, "-c", script, md5[4]], input=data, capture_output=True, check=True)
    assert out.stdout.decode().strip() == "known-bad"


def test_new_sets_are_seen_without_reopening(tmp_path: Path, samples, imported) -> None:
    values = samples.hashes("sha256", 3)
    _, known = imported(lines(tmp_path / "a.txt", values[:1]), "a")
    assert [g[0] for g in known.lookup(sha256=values)] == ["known-bad", None, None]
    imported(lines(tmp_path / "b.txt", values[1:2]), "b", "notable")
    assert known.lookup(sha256=values) == [("known-bad", ["a"]), ("notable", ["b"]), (None, [])]


def test_match_phash_nearest_across_sets(tmp_path: Path, imported) -> None:
    (tmp_path / "one.csv").write_text("name,phash\nsunset.jpg,ffff0000ffff0000\nboat.jpg,0123456789abcdef\n")
    (tmp_path / "two.csv").write_text("name,phash\ncopy.jpg,ffff0000ffff0001\nother.jpg,00000000000000ff\n")
    imported(tmp_path / "one.csv", "one")
    _, known = imported(tmp_path / "two.csv", "two", "notable")
    queries = ["ffff0000ffff0003", "ffff0000ffff0000", "0123456789abcde0", "ff00ff00ff00ff00", None, "not-hex-at-all!!"]
    assert known.match_phash(queries) == [
        ("two:copy.jpg", 1),
        ("one:sunset.jpg", 0),
        ("one:boat.jpg", 4),
        (None, None), (None, None), (None, None),
    ]
    assert known.match_phash(["0123456789abcde0"], max_distance=3) == [(None, None)]
    with pytest.raises(ValueError):
        known.match_phash(["0" * 16], max_distance=65)
