"""Perceptual matching end to end with generated pictures: copies match, strangers do not.

Pictures are structured random scenes (a colour gradient, a dozen filled
shapes, pixel noise), 128-256 px, so each has its own low-frequency layout the
way photographs do; flat colours would all share one phash.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from triage_test_fixtures.hashsets import jpeg, scene, variants

from triage.rules.matcher import KnownItems
from triage.rules.phash import phash_file
from triage.rules.phashindex import DEFAULT_MAX_DISTANCE

REFERENCES = 24
STRANGERS = 300


@pytest.fixture(scope="module")
def reference_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from triage.rules.importer import import_hashset

    root = tmp_path_factory.mktemp("perceptual")
    refs = root / "refs"
    (refs / "sub").mkdir(parents=True)
    for i in range(REFERENCES):
        scene(i).save(refs / ("sub" if i % 2 else ".") / f"ref{i:02d}.png")
    (refs / "README.txt").write_text("reference pictures for the tests\n")
    (refs / "broken.jpg").write_bytes(jpeg(scene(99), 90)[:300])
    home = root / "home"
    report = import_hashset(refs, "pictures", "known-bad", home=home)
    assert report.format == "images" and report.counts["phash"] == REFERENCES
    assert report.counts["sha256"] == REFERENCES
    assert sorted(s.split(":")[0] for s in report.skipped) == ["README.txt", "broken.jpg"]
    return home, refs


def test_resized_and_recompressed_copies_match(reference_home: tuple[Path, Path], tmp_path: Path) -> None:
    home, refs = reference_home
    queries, expected = [], []
    for i in range(REFERENCES):
        for label, data in variants(scene(i)).items():
            path = tmp_path / f"{i}-{label}"
            path.write_bytes(data)
            queries.append(phash_file(path))
            expected.append(f"pictures:{'sub/' if i % 2 else ''}ref{i:02d}.png")
    matches = KnownItems.open(home).match_phash(queries)
    assert [m[0] for m in matches] == expected
    assert all(0 <= m[1] <= DEFAULT_MAX_DISTANCE for m in matches)  # type: ignore[operator]


def test_unrelated_pictures_do_not_match(reference_home: tuple[Path, Path]) -> None:
    home, _ = reference_home
    queries = []
    for seed in range(10_000, 10_000 + STRANGERS):
        buf = io.BytesIO(jpeg(scene(seed), 85))
        queries.append(phash_file(buf))
    assert KnownItems.open(home).match_phash(queries) == [(None, None)] * STRANGERS


def test_exact_copies_hit_by_hash_too(reference_home: tuple[Path, Path], samples) -> None:
    home, refs = reference_home
    digest = samples.digest(refs / "sub" / "ref01.png", "sha256")
    assert KnownItems.open(home).lookup(sha256=[digest, "00" * 32]) == [("known-bad", ["pictures"]), (None, [])]


def test_pixel_limit_refuses_before_decoding(tmp_path: Path, home: Path) -> None:
    from triage.rules.errors import HashSetFormatError, ImageHashError
    from triage.rules.importer import import_hashset

    folder = tmp_path / "big"
    folder.mkdir()
    scene(1).save(folder / "a.png")
    with pytest.raises(ImageHashError, match="over the limit of 1000"):
        phash_file(folder / "a.png", max_pixels=1000)
    with pytest.raises(HashSetFormatError, match=r"big: no hashes found \(1 files skipped: a.png: .* over the limit"):
        import_hashset(folder, "big", "notable", home=home, max_pixels=1000)
