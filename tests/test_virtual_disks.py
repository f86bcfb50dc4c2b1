"""`run_image` on virtual disks made by `qemu-img` from the raw MBR fixture: the same rows and hashes as the raw image.

Each variant's media stream is the raw image byte for byte (checked by ``qemu-img compare``
when built), so every walked file, every volume and the image hash must equal the raw run's;
only the container's own files differ, and those are listed as the evidence's segments.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from triage_test_fixtures import virtual

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not virtual.have_qemu_img(), reason="qemu-img not installed")]

#: one pipeline run per container family and layout (every subformat's media stream is checked in
#: tests/workers/test_image.py; running all ten through the pipeline would double the suite's time)
RUN_VARIANTS = ["vmdk-streamOptimized", "vmdk-twoGbMaxExtentSparse", "vhd-dynamic", "vhdx-dynamic", "qcow2"]

FILE_COLUMNS = ("partition", "path", "inode", "attr_type", "attr_id", "size", "deleted", "source", "md5", "sha1",
                "sha256", "type", "status", "mime", "offset")
VOLUME_COLUMNS = ("index", "slot", "start", "length", "flags", "description", "volume_system", "filesystem",
                  "files", "status")


def _files(run) -> list[tuple]:
    return sorted(tuple(r[c] for c in FILE_COLUMNS) for r in run.files)


def _volumes(run) -> list[tuple]:
    return [tuple(v[c] for c in VOLUME_COLUMNS) for v in run.volumes]


@pytest.fixture(scope="module")
def raw_run(mbr_image, triaged):
    return triaged(mbr_image)


def _check_same_as_raw(run, raw_run, img) -> None:
    assert run.result.exit_code == raw_run.result.exit_code, run.result.problems
    assert run.files and _files(run) == _files(raw_run)
    assert _volumes(run) == _volumes(raw_run)
    assert (run.image["md5"], run.image["sha256"], run.image["size"]) == (
        raw_run.image["md5"], raw_run.image["sha256"], raw_run.image["size"])
    assert sorted(run.image["segments"]) == sorted(str(s) for s in img.segments)
    # the container files are on record as they lie on disk, beside the media stream's hash
    assert raw_run.image["containers"] == []
    on_disk = {str(s): Path(s).read_bytes() for s in img.segments}
    assert {c["path"]: (c["size"], c["md5"], c["sha256"]) for c in run.image["containers"]} == {
        p: (len(b), hashlib.md5(b).hexdigest(), hashlib.sha256(b).hexdigest()) for p, b in on_disk.items()}


@pytest.mark.parametrize("variant", RUN_VARIANTS)
def test_same_rows_and_hashes_as_the_raw_image(variant, mbr_image, raw_run, triaged, tmp_path_factory):
    img = virtual.build_virtual(mbr_image, tmp_path_factory.mktemp(variant), variant)
    run = triaged(img)
    assert run.image["format"] == virtual.FORMAT_NAME[virtual.VARIANTS[variant][0]]
    _check_same_as_raw(run, raw_run, img)


def test_a_qcow2_overlay_is_triaged_through_its_backing_file(mbr_image, raw_run, triaged, tmp_path_factory):
    img = virtual.build_backed(mbr_image, tmp_path_factory.mktemp("backed"), "qcow2")
    assert Path(img.path).stat().st_size < 1 << 20  # the overlay itself holds no data: every row comes from the base
    run = triaged(img)
    _check_same_as_raw(run, raw_run, img)
