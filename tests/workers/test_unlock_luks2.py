"""LUKS2 unlocked from its on-disk format (libluksde reads LUKS1 only): headers and keyslots written by
``cryptsetup luksFormat --type luks2`` (pbkdf2 and argon2id), the payload encrypted per sector by the fixture with
``cryptography``'s XTS; the plaintext filesystem and `fls`/`icat` on it are the oracle."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from triage.rules.errors import FilesystemError
from triage.workers.luks2 import _xts, open_luks2, read_header
from triage_test_fixtures.encrypted import LAYOUT, PASSPHRASE, build_luks_disk
from triage_test_fixtures.results import read_parquet

needs_cryptsetup = pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="no cryptsetup")


@pytest.fixture(scope="module", params=["pbkdf2", "argon2id"])
def luks2_disk(request, tmp_path_factory):
    return build_luks_disk(tmp_path_factory.mktemp(f"luks2-{request.param}"), "luks2", request.param)


def _reader(disk):
    data = disk.path.read_bytes()
    start = LAYOUT["luks"][0] * 512
    return (lambda o, n: data[start + o:start + o + n]), LAYOUT["luks"][1] * 512


@needs_cryptsetup
def test_the_passphrase_gives_back_the_plaintext(luks2_disk):
    read, length = _reader(luks2_disk)
    kdf = next(iter(read_header(read)["keyslots"].values()))["kdf"]["type"]
    assert kdf in ("pbkdf2", "argon2id")
    media = open_luks2(read, length, PASSPHRASE)
    plain = luks2_disk.inner.read_bytes()
    assert media.size == len(plain) and media.read(0, len(plain)) == plain
    assert media.read(777, 5000) == plain[777:5777]  # reads not on sector boundaries
    with pytest.raises(FilesystemError, match="the key given does not unlock it"):
        open_luks2(read, length, "correct horse battery stapler")


@needs_cryptsetup
@pytest.mark.slow
def test_a_luks2_partition_is_triaged_with_its_key(luks2_disk, tmp_path, triage_cli):
    disk = luks2_disk
    part = disk.partitions["luks"]
    keyfile = tmp_path / "pass.txt"
    keyfile.write_text(PASSPHRASE + "\n")
    res = triage_cli("run", disk.path, "-o", tmp_path / "out", "--no-progress", "--no-reports",
                     "--key", f"{part}=keyfile:{keyfile}")
    assert res.returncode == 4, res.stdout + res.stderr  # the random partition stays a problem
    vols = {v["index"]: v for v in read_parquet(tmp_path / "out" / "volumes.parquet")}
    assert (vols[part]["status"], vols[part]["filesystem"], vols[part]["layer"]) == ("ok", "FAT16", "luks")
    rows = {r["path"]: r for r in read_parquet(tmp_path / "out" / "files.parquet") if r["partition"] == part}
    hashed = 0
    for inode, digests in disk.inner_truth.digests.items():
        entry = next(e for e in disk.inner_truth.entries if e.inode == inode)
        if entry.path in rows and not entry.deleted:
            assert rows[entry.path]["md5"] == digests.md5, entry.path
            hashed += 1
    assert hashed >= 2
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [v["partition"] for v in summary["ranking"]["encrypted"]] == [disk.partitions["random"]]


def test_bulk_xts_matches_cryptography_per_sector():
    key = bytes(range(64))
    for sector in (512, 4096):
        data = os.urandom(3 * sector)
        want = b""
        for i in range(3):
            tweak = (41 + i).to_bytes(16, "little")
            ctx = Cipher(algorithms.AES(key), modes.XTS(tweak)).encryptor()
            want += ctx.update(data[i * sector:(i + 1) * sector]) + ctx.finalize()
        assert _xts(key, data, 41, sector, decrypt=False) == want
        assert _xts(key, want, 41, sector) == data


def test_garbage_is_refused_in_one_line():
    for head in (b"\0" * 8192, b"LUKS\xba\xbe\x00\x02" + (1 << 40).to_bytes(8, "big") + b"\0" * 8000,
                 b"LUKS\xba\xbe\x00\x02" + (8192).to_bytes(8, "big") + b"\0" * 4080 + b"{not json" + b"\0" * 4000):
        with pytest.raises(FilesystemError):
            open_luks2(lambda o, n, h=head: h[o:o + n], len(head), "x")
