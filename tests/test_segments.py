"""Huge files are read by chains of bounded segment tasks; the results do not depend on it."""

from pathlib import Path

import dask.config
import pyarrow.parquet as pq
import pytest

from triage.demo import build_sample
from triage.pipeline import run_image


@pytest.mark.slow
def test_segmented_reading_gives_the_same_table(client, tmp_path):
    image = build_sample(tmp_path / "sample.dd")
    whole = run_image(image, tmp_path / "whole", client, carve="none")
    with dask.config.set({"triage.content.split-bytes": "192KiB", "triage.content.max-image-bytes": "128KiB",
                          "triage.content.chunk-bytes": "64KiB"}):
        run = run_image(image, tmp_path / "split", client, carve="none")
    assert run.exit_code == whole.exit_code
    # big.bin (2 MiB and 512 KiB) and more went through chains of 192 KiB links
    a = pq.read_table(Path(whole.out) / "files.parquet")
    b = pq.read_table(Path(run.out) / "files.parquet")
    big = [r for r in b.select(["path", "size", "sha256", "mime"]).to_pylist() if r["path"].endswith("big.bin")]
    assert len(big) == 2 and all(r["size"] > 192 * 1024 and r["sha256"] for r in big)
    # pHash is not computed above max-image-bytes: everything else must agree exactly
    assert a.drop(["phash", "phash_match", "phash_distance", "status"]).equals(
        b.drop(["phash", "phash_match", "phash_distance", "status"]))
