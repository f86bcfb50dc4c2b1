"""Archives inside a phone extraction are expanded like archives on a disk (issue 15 points 1 and 2 together).

A zip holding a tar sits in an Android-shaped tar, tar.gz, zip and folder source: its
members are rows with their hashes and ``container``, whether the source reads the zip
in place (a tar's or folder's byte ranges) or has to inflate it first (zip, tar.gz).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ZIP_PATH = "data/media/0/Download/pics.zip"
INNER = {"inner/a.txt": b"hello inside zip\n" * 10, "inner/b.bin": bytes(range(256)) * 40,
         # incompressible, so the zip is larger than the 1 KiB nested-bytes of the last test
         "inner/c.rnd": b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(256))}
IN_TAR = {"deep/c.txt": b"two levels down\n" * 3}


def _archive() -> bytes:
    tb = io.BytesIO()
    with tarfile.open(fileobj=tb, mode="w") as t:
        for name, data in IN_TAR.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1_700_000_000
            t.addfile(ti, io.BytesIO(data))
    zb = io.BytesIO()
    with zipfile.ZipFile(zb, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in INNER.items():
            z.writestr(name, data)
        z.writestr("inner/more.tar", tb.getvalue())
    return zb.getvalue()


def _members() -> dict[str, bytes]:
    return {"data/media/0/DCIM/Camera/note.txt": b"not an archive\n", ZIP_PATH: _archive()}


def _build(kind: str, where: Path) -> Path:
    members = _members()
    if kind == "folder":
        root = where / "phone"
        for name, data in members.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        return root
    if kind == "zip":
        path = where / "phone.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data)
        return path
    path = where / ("phone.tgz" if kind == "tgz" else "phone.tar")
    with tarfile.open(path, "w:gz" if kind == "tgz" else "w") as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 1_700_000_000
            t.addfile(ti, io.BytesIO(data))
    return path


def _hashes(data: bytes) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in ("md5", "sha1", "sha256")}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tar", "tgz", "zip", "folder"])
def test_an_archive_inside_an_extraction_is_expanded(triage_cli, tmp_path, kind):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    source = _build(kind, evidence)
    out = tmp_path / "out"
    proc = triage_cli("run", source, "-o", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    rows = {r["path"]: r for r in pq.read_table(out / "files.parquet").to_pylist()}
    assert rows[ZIP_PATH]["source"] == "logical" and rows[ZIP_PATH]["status"] == "ok"
    for name, data in INNER.items():
        row = rows[f"{ZIP_PATH}/{name}"]
        assert row["source"] == "archive member" and row["container"] == ZIP_PATH, row
        assert {a: row[a] for a in ("md5", "sha1", "sha256")} == _hashes(data)
    tar_row = f"{ZIP_PATH}/inner/more.tar"
    deep = rows[f"{tar_row}/deep/c.txt"]  # level 2: the tar inside the zip (archives.depth 2)
    assert deep["container"] == tar_row and deep["md5"] == _hashes(IN_TAR["deep/c.txt"])["md5"]
    assert sorted(p for p in rows if p.startswith(ZIP_PATH + "/")) == sorted(
        [f"{ZIP_PATH}/{n}" for n in INNER] + [tar_row, f"{tar_row}/deep/c.txt"])


def test_a_compressed_member_over_nested_bytes_is_a_status_not_a_read(triage_cli, tmp_path, monkeypatch):
    """An inflated member must be read into memory to expand: over archives.nested-bytes it is not."""
    source = _build("zip", tmp_path)
    out = tmp_path / "out"
    monkeypatch.setenv("DASK_TRIAGE__ARCHIVES__NESTED_BYTES", "1KiB")
    proc = triage_cli("run", source, "-o", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    rows = {r["path"]: r for r in pq.read_table(out / "files.parquet").to_pylist()}
    assert "archives.nested-bytes" in rows[ZIP_PATH]["status"]
    assert not any(p.startswith(ZIP_PATH + "/") for p in rows)
