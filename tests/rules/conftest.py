"""Fixtures for the known-item layer: a fresh state directory and deterministic sample hashes.

Helpers are exposed as fixtures (pytest runs with ``--import-mode=importlib``, so
test modules cannot import each other or this file by name).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from triage.rules.importer import ImportReport, import_hashset
from triage.rules.matcher import KnownItems

WIDTH = {"md5": 16, "sha1": 20, "sha256": 32}


class Samples:
    """Deterministic random digests, and the real digests of small made-up files."""

    def hashes(self, algorithm: str, count: int, seed: int = 0) -> list[str]:
        rng = random.Random(f"{algorithm}-{seed}")
        return [rng.randbytes(WIDTH[algorithm]).hex() for _ in range(count)]

    def files(self, folder: Path, count: int, seed: int = 0) -> list[Path]:
        """``count`` small files with distinct random content (for md5sum & co.)."""
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed)
        paths = []
        for i in range(count):
            path = folder / f"file {i}.bin"
            path.write_bytes(rng.randbytes(rng.randrange(1, 200)))
            paths.append(path)
        return paths

    @staticmethod
    def digest(path: Path, algorithm: str) -> str:
        return hashlib.new(algorithm, path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def samples() -> Samples:
    return Samples()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def imported(home: Path) -> Callable[..., tuple[ImportReport, KnownItems]]:
    """``imported(path, name, category="known-bad", **kw)`` -> (report, KnownItems for home)."""

    def run(path: Path, name: str = "set", category: str = "known-bad", **kw: object) -> tuple[ImportReport, KnownItems]:
        report = import_hashset(path, name, category, home=home, **kw)  # type: ignore[arg-type]
        return report, KnownItems.open(home)

    return run
