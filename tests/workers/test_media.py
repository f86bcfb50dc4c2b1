"""The whole-image hash: md5 and sha256 on two threads over a ring of read buffers, same digests as sha256sum."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from triage.workers import media
from triage.workers.image import identify
from triage.workers.media import hash_media


def _segments(tmp_path: Path, sizes: list[int]) -> bytes:
    data = os.urandom(sum(sizes))
    pos = 0
    for i, n in enumerate(sizes, start=1):
        (tmp_path / f"disk.{i:03d}").write_bytes(data[pos : pos + n])
        pos += n
    return data


@pytest.mark.parametrize("block", [4096, 1000, 1 << 20])
def test_split_raw_digests_match_the_tools(tmp_path: Path, block: int) -> None:
    """Blocks that straddle nothing, blocks cut mid-segment, one block per image: same digests as the tools."""
    _segments(tmp_path, [300_000, 123_457, 5])
    ref = identify(tmp_path / "disk.001")
    got = hash_media(ref, block=block)
    cat = b"".join((tmp_path / f"disk.{i:03d}").read_bytes() for i in (1, 2, 3))
    oracle = subprocess.run(["sha256sum"], input=cat, capture_output=True, check=True).stdout.split()[0].decode()
    assert (got.size, got.md5, got.sha256, got.error) == (len(cat), hashlib.md5(cat).hexdigest(), oracle, None)


def test_md5_and_sha256_run_on_their_own_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each hash is fed by its own thread, never the reading one: so the chain costs the slower hash."""
    (tmp_path / "disk.dd").write_bytes(os.urandom(1 << 20))
    seen: dict[str, set[str]] = {"md5": set(), "sha256": set()}
    real_md5, real_sha256 = hashlib.md5, hashlib.sha256

    class Spy:
        def __init__(self, name: str, h) -> None:
            self.name, self.h = name, h

        def update(self, data) -> None:
            seen[self.name].add(threading.current_thread().name)
            self.h.update(data)

        def hexdigest(self) -> str:
            return self.h.hexdigest()

    monkeypatch.setattr(media.hashlib, "md5", lambda **kw: Spy("md5", real_md5(**kw)))
    monkeypatch.setattr(media.hashlib, "sha256", lambda: Spy("sha256", real_sha256()))
    got = hash_media(identify(tmp_path / "disk.dd"), block=64 << 10)
    assert got.sha256 == real_sha256((tmp_path / "disk.dd").read_bytes()).hexdigest()
    main = threading.current_thread().name
    assert len(seen["md5"]) == len(seen["sha256"]) == 1
    assert seen["md5"].isdisjoint(seen["sha256"]) and main not in seen["md5"] | seen["sha256"]


def test_a_short_segment_is_reported_not_hidden(tmp_path: Path) -> None:
    _segments(tmp_path, [4096, 4096])
    ref = identify(tmp_path / "disk.001")
    (tmp_path / "disk.002").write_bytes(b"x" * 100)  # shrunk after identify
    got = hash_media(ref, block=1024)
    # the worker checks its copy before reading (triage.workers.pathmap): the image as a whole differs now
    assert got.error is not None and "disk.001: copy differs" in got.error
    assert f"4196 bytes, expected {ref.size}" in got.error


@pytest.mark.skipif(not shutil.which("ewfacquire"), reason="needs ewfacquire (ewf-tools)")
def test_e01_digest_is_the_acquired_media_and_its_stored_md5_checks(tmp_path: Path) -> None:
    raw = tmp_path / "raw.dd"
    raw.write_bytes(os.urandom(3 << 20) + bytes(1 << 20))
    subprocess.run(["ewfacquire", "-u", "-t", str(tmp_path / "ev"), "-c", "none", "-f", "encase6", str(raw)],
                   check=True, capture_output=True)
    got = hash_media(identify(tmp_path / "ev.E01"), block=256 << 10)
    data = raw.read_bytes()
    assert (got.md5, got.sha256) == (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
    assert got.ewf_stored_md5 == got.md5 and got.ewf_verified is True and got.error is None
