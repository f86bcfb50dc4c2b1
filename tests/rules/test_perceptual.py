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

from triage.rules.matcher import KnownItems
from triage.rules.phash import phash_file
from triage.rules.phashindex import DEFAULT_MAX_DISTANCE

REFERENCES = 24
STRANGERS = 300


def scene(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = (int(v) for v in rng.integers(128, 257, 2))
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    horizontal = rng.random() < 0.5
    t = np.linspace(0, 1, w)[None, :, None] if horizontal else np.linspace(0, 1, h)[:, None, None]
    image = Image.fromarray((c0 * (1 - t) + c1 * t + np.zeros((h, w, 1))).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        x0, x1 = sorted(int(v) for v in rng.integers(-w // 4, w + w // 4, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(-h // 4, h + h // 4, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        else:
            draw.polygon([(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(3)], fill=colour)
    noisy = np.asarray(image).astype(np.int16) + rng.integers(-12, 13, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def variants(image: Image.Image) -> dict[str, bytes]:
    w, h = image.size
    half = io.BytesIO()
    image.resize((w // 2, h // 2), Image.Resampling.BILINEAR).save(half, "PNG")
    big = io.BytesIO()
    image.resize((w * 3 // 2, h * 3 // 2), Image.Resampling.LANCZOS).save(big, "PNG")
    return {
        "half.png": half.getvalue(),
        "big.png": big.getvalue(),
        "q40.jpg": jpeg(image, 40),
        "small-q70.jpg": jpeg(image.resize((w * 3 // 4, h * 3 // 4)), 70),
    }


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
