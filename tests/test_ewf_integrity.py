"""An E01 whose content no longer matches its stored acquisition hash is reported loudly (exit 6)."""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not (shutil.which("ewfacquire") and shutil.which("mke2fs", path="/sbin:/usr/sbin:/usr/bin")),
                                reason="needs ewfacquire (ewf-tools) and mke2fs (e2fsprogs)")


@pytest.fixture(scope="module")
def e01(tmp_path_factory):
    d = tmp_path_factory.mktemp("ewf")
    src = d / "src"
    src.mkdir()
    (src / "evidence.bin").write_bytes(bytes(range(256)) * 8192)
    raw = d / "raw.dd"
    mke2fs = shutil.which("mke2fs", path="/sbin:/usr/sbin:/usr/bin")
    subprocess.run([mke2fs, "-q", "-F", "-t", "ext2", "-d", str(src), str(raw), "8M"], check=True, capture_output=True)
    subprocess.run(["ewfacquire", "-u", "-t", str(d / "good"), "-c", "none", "-f", "encase6", str(raw)],
                   check=True, capture_output=True)
    return raw, d / "good.E01"


def _run(image, out):
    return subprocess.run([sys.executable, "-m", "triage.cli.main", "run", str(image), "-o", str(out), "--workers", "1"],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_intact_e01_is_verified(e01, tmp_path):
    raw, good = e01
    r = _run(good, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path / "out" / "image.json").read_text())
    assert info["ewf"]["verified"] is True
    assert info["md5"] == info["ewf"]["stored_md5"] == hashlib.md5(raw.read_bytes()).hexdigest()
    assert info["sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()


@pytest.mark.slow
def test_altered_e01_is_a_loud_mismatch(e01, tmp_path):
    _, good = e01
    bad = tmp_path / "bad.E01"
    data = bytearray(good.read_bytes())
    at = data.find(bytes(range(256)) * 4)  # inside evidence.bin's acquired data
    assert at > 0
    data[at + 100] ^= 0xFF
    bad.write_bytes(bytes(data))
    r = _run(bad, tmp_path / "out")
    assert r.returncode == 6, r.stderr
    assert "E01 INTEGRITY FAILURE" in r.stderr and "bad.E01" in r.stderr
    assert "MISMATCH" in r.stdout
    info = json.loads((tmp_path / "out" / "image.json").read_text())
    assert info["ewf"]["verified"] is False
