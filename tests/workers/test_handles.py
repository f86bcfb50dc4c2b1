"""Open handles are bounded: a worker that triages image after image keeps a flat number of open files."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from triage.workers import handles
from triage.workers.image import identify, open_image
from triage.workers.refs import VolumeRef
from triage.workers.walk import walk_filesystem
from triage_test_fixtures import virtual
from triage_test_fixtures.mkfs import make_fat

pytestmark = pytest.mark.skipif(not virtual.have_qemu_img(), reason="qemu-img not installed")

N_IMAGES = 50


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """50 distinct image paths, half raw FAT, half QCOW2 of it (hard links: distinct images to the cache)."""
    work = tmp_path_factory.mktemp("many")
    fat = work / "small.raw"
    make_fat(fat, 2 << 20, {"a.txt": b"hello\n" * 100, "d/b.txt": b"world\n" * 50}, fat=12)
    qcow = work / "small.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(fat), str(qcow)], check=True)
    out = []
    for i in range(N_IMAGES):
        src = fat if i % 2 else qcow
        link = work / f"img{i:02d}{src.suffix}"
        os.link(src, link)
        out.append(link)
    return out


def _walk_one(path: str) -> int:
    """One job's worth of handle use: the image, its filesystem, a full walk; returns this process's open fds."""
    ref = identify(path)
    res = walk_filesystem(VolumeRef(ref, 0, 0, ref.size))
    assert res.status == "ok" and res.table.num_rows >= 3, res.status
    return open_fds()


def test_lru_closes_what_falls_out():
    closed = []
    lru = handles.LRU(2, lambda k, v: closed.append(k))
    for k in "abcab":
        lru.get(k, lambda k=k: k.upper())
    assert closed == ["a", "b", "c"] and len(lru) == 2
    lru.discard(lambda k: k != "a")
    assert closed[-1] == "a" and "b" in lru


def test_open_files_stay_flat_over_many_images_in_one_thread(many_images):
    def work() -> None:
        counts = [_walk_one(str(p)) for p in many_images]
        assert len(handles.images()) <= handles.MAX_OPEN_IMAGES
        assert max(counts[10:]) <= counts[9] + 1, counts  # flat once the cache is full
        opened_after_cap = counts[-1]
        handles.clear()
        assert open_fds() < opened_after_cap
        result.append(counts)

    result: list = []
    t = threading.Thread(target=work)  # a fresh thread: its own caches, like a worker's executor thread
    t.start()
    t.join()
    assert result, "the worker thread failed (see the assertion above)"


@pytest.mark.slow
def test_a_dask_worker_open_files_stay_flat_over_50_jobs(client, many_images):
    """50 walk jobs, one image each, all on one worker process, one after another (only
    importable task functions travel: a test module's own functions cannot be unpickled there)."""
    worker = sorted(client.scheduler_info()["workers"])[0]

    def worker_fds() -> int:
        return len(client.run(os.listdir, "/proc/self/fd", workers=[worker])[worker])

    counts = []
    for p in many_images:
        ref = identify(p)
        res = client.submit(walk_filesystem, VolumeRef(ref, 0, 0, ref.size), workers=[worker], pure=False).result()
        assert res.status == "ok" and res.table.num_rows >= 3, res.status
        counts.append(worker_fds())
    assert max(counts[10:]) <= counts[9] + 2, counts


def test_cache_sizes_come_from_the_worker_config(many_images):
    """`cluster.open-images` (triage.yaml / DASK_TRIAGE__CLUSTER__OPEN_IMAGES) bounds a fresh thread's cache."""
    import dask

    def work() -> None:
        with dask.config.set({"triage.cluster.open-images": 2, "triage.cluster.open-filesystems": 3}):
            for p in many_images[:6]:
                _walk_one(str(p))
            result.append((len(handles.images()), len(handles.filesystems())))
        handles.clear()

    result: list = []
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert result == [(2, 2)], result
