"""The volume-system registry: tried in order, unknown names list the known ones, a bare encrypted volume is one volume."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from triage.rules.errors import ImageError, VolumeError
from triage.workers.image import identify
from triage.workers.volumes import VOLUME_SYSTEMS, list_partitions


def test_registered_volume_systems():
    assert VOLUME_SYSTEMS.names() == ["apfs", "encrypted", "lvm", "none", "tsk"]
    with pytest.raises(VolumeError, match="unknown volume system 'zfs'; known: apfs, encrypted, lvm, none, tsk"):
        VOLUME_SYSTEMS.get("zfs")


@pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="cryptsetup not installed")
def test_a_bare_luks_image_is_one_encrypted_volume(tmp_path):
    p = tmp_path / "bare.luks"
    with open(p, "wb") as f:
        f.truncate(4 << 20)
    subprocess.run(["cryptsetup", "luksFormat", "--type", "luks2", "--batch-mode", "--pbkdf", "pbkdf2",
                    "--pbkdf-force-iterations", "1000", "--luks2-metadata-size", "16k", "--luks2-keyslots-size",
                    "1m", "--key-file", "-", str(p)], input=b"pw", check=True, capture_output=True)
    parts = list_partitions(identify(p))
    assert [(x.slot, x.start, x.description, x.volume_system) for x in parts] == [
        ("whole image", 0, "LUKS2 encrypted volume (no partition table)", "none")]


def test_zeros_are_still_not_an_image(tmp_path):
    p = tmp_path / "zeros.dd"
    p.write_bytes(bytes(1 << 20))
    with pytest.raises(ImageError, match="zeros.dd: no partition table or filesystem recognised"):
        list_partitions(identify(p))


def test_a_whole_file_of_random_bytes_is_not_taken_for_an_encrypted_volume(tmp_path):
    """Entropy alone marks a *partition* as possibly encrypted; a headerless file stays 'not a device image'."""
    import random

    p = tmp_path / "noise.dd"
    p.write_bytes(random.Random(7).randbytes(1 << 20))
    with pytest.raises(ImageError, match="noise.dd: no partition table or filesystem recognised"):
        list_partitions(identify(p))
