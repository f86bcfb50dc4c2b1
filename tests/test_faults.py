"""The run's failure branches: each task kind fails in turn, the rest of the device is triaged.

A fault-injecting client wraps the session's real cluster client: the one task chosen
(the first of its kind, or the first link past the start of a segment chain) runs a
function that raises instead of its task function; every other task is the real one.
For each kind the test checks what the examiner relies on: the problem is reported in
the summary, the exit code is the documented one (4: triaged with problems; an image
whose partitions cannot be listed is refused as bad input), everything else matches a
clean run, and the byte and file accounting adds up.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import dask.config
import pyarrow.parquet as pq
import pytest

from triage.demo import build_sample
from triage.driver import Driver
from triage.finish import EXIT_PROBLEMS, finalize
from triage.rules.errors import ImageError
from triage.runstate import ImageRun

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import a test module

#: small chain links, so the sample's big files are read by segment chains
SPLIT = {"triage.content.split-bytes": "192KiB", "triage.content.max-image-bytes": "128KiB",
         "triage.content.chunk-bytes": "64KiB"}


def injected_fault(arg: object) -> object:
    raise RuntimeError("injected fault")


class FaultyClient:
    """A distributed client whose first task of ``kind`` (matching ``when``) raises on the worker."""

    def __init__(self, client: Any, kind: str, when: Callable[[Any], bool] = lambda arg: True) -> None:
        self.client, self.kind, self.when = client, kind, when
        self.injected: list[Any] = []

    def submit(self, func: Callable, arg: Any, *, key: str, **kw: Any) -> Any:
        if not self.injected and key.startswith(f"{self.kind}-") and self.when(arg):
            self.injected.append(arg)
            func = injected_fault
        return self.client.submit(func, arg, key=key, **kw)

    def cancel(self, futures: list[Any]) -> None:
        self.client.cancel(futures)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample(tmp_path_factory.mktemp("faults") / "sample.dd")


@pytest.fixture(autouse=True)
def _split() -> Iterator[None]:
    with dask.config.set(SPLIT):
        yield


def triage(client: Any, image: Path, out: Path) -> tuple[ImageRun, Any]:
    run = ImageRun(image, out, carve="unalloc")
    Driver(client).drive(run)
    assert run.bytes_done == run.bytes_total  # every planned byte accounted for, however its task ended
    return run, finalize(run)


@pytest.fixture(scope="module")
def clean(client: Any, sample: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with dask.config.set(SPLIT):
        run, res = triage(client, sample, tmp_path_factory.mktemp("clean") / "out")
    rows = pq.read_table(res.out / "files.parquet").to_pylist()
    return {"run": run, "res": res, "rows": {(r["partition"], r["path"]): r for r in rows}}


def rows_of(res: Any) -> dict[tuple[int, str], dict]:
    return {(r["partition"], r["path"]): r for r in pq.read_table(res.out / "files.parquet").to_pylist()}


def differing(clean: dict[str, Any], res: Any) -> set[tuple[int, str]]:
    got = rows_of(res)
    keys = set(got) | set(clean["rows"])
    return {k for k in keys if got.get(k, {}).get("sha256") != clean["rows"].get(k, {}).get("sha256")
            or (got.get(k) or {}).get("status") != (clean["rows"].get(k) or {}).get("status")}


def new_problems(clean: dict[str, Any], res: Any) -> list[str]:
    return [p for p in res.problems if p not in clean["res"].problems]


def test_the_clean_run_uses_every_task_kind(clean: dict[str, Any]) -> None:
    assert clean["res"].exit_code == EXIT_PROBLEMS  # the sample has a partition with no filesystem
    assert clean["run"].files_done > 0
    assert any(r["size"] > 192 * 1024 and r["sha256"] for r in clean["rows"].values())  # chains were used
    assert any(r["source"] == "carved" for r in clean["rows"].values())  # and carving


def test_image_hash_fails(client: Any, sample: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    faulty = FaultyClient(client, "media")
    run, res = triage(faulty, sample, tmp_path / "out")
    assert faulty.injected and res.exit_code == EXIT_PROBLEMS
    assert new_problems(clean, res) == [f"{run.ref.path}: image hash task failed: RuntimeError: injected fault"]
    assert res.summary["image"]["error"].startswith("image hash task failed") and res.summary["image"]["md5"] == ""
    assert differing(clean, res) == set()  # every file still triaged
    assert run.files_done == clean["run"].files_done


def test_partition_listing_fails(client: Any, sample: Path, tmp_path: Path) -> None:
    faulty = FaultyClient(client, "partitions")
    run = ImageRun(sample, tmp_path / "out", carve="unalloc")
    with pytest.raises(ImageError, match="partitions could not be listed: RuntimeError: injected fault") as exc:
        Driver(faulty).drive(run)
    assert exc.value.exit_code == 3  # nothing can be planned: bad input, as documented
    run.abort()
    assert not (tmp_path / "out" / "summary.json").exists()


def test_a_walk_fails(client: Any, sample: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    faulty = FaultyClient(client, "walk")
    run, res = triage(faulty, sample, tmp_path / "out")
    failed = faulty.injected[0].index
    assert res.exit_code == EXIT_PROBLEMS
    assert [p for p in new_problems(clean, res) if f"partition {failed} " in p and "walk failed" in p]
    lost = differing(clean, res)
    assert lost and {part for part, _ in lost} == {failed}  # the other partitions are untouched
    assert run.files_done == clean["run"].files_done - sum(
        1 for (part, _), r in clean["rows"].items() if part == failed and r["sha256"] is not None
        and r["source"] not in ("carved", "archive member"))  # files read by content tasks, not members expanded


def test_a_content_batch_fails(client: Any, sample: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    faulty = FaultyClient(client, "content")
    run, res = triage(faulty, sample, tmp_path / "out")
    batch = faulty.injected[0]
    got = rows_of(res)
    broken = {k for k, r in got.items() if r["status"].startswith("unreadable: content task failed")}
    assert len(broken) == len(batch.items) and {k[0] for k in broken} == {batch.volume.index}
    # what else differs is only the members of archives among the broken files (never typed, so never expanded)
    extra = differing(clean, res) - broken
    assert broken <= differing(clean, res)
    assert all(clean["rows"][k]["source"] == "archive member" and k not in got
               and (k[0], clean["rows"][k]["container"]) in broken | extra for k in extra), extra
    assert res.exit_code == EXIT_PROBLEMS
    reported = [p for p in new_problems(clean, res) if "content task failed: RuntimeError: injected fault" in p]
    allocated = [k for k in broken if got[k]["source"] == "allocated"]
    assert len(reported) == min(len(allocated), 20)  # each listed (up to 20), where the examiner reads
    assert run.files_done == clean["run"].files_done


def test_a_link_of_a_segment_chain_fails(client: Any, sample: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    faulty = FaultyClient(client, "segment", when=lambda seg: seg.start > 0)
    run, res = triage(faulty, sample, tmp_path / "out")
    seg = faulty.injected[0]
    got = rows_of(res)
    broken = [k for k, r in got.items() if r["status"].startswith("unreadable: content task failed")]
    assert len(broken) == 1 and got[broken[0]]["size"] == seg.item.size
    assert differing(clean, res) == set(broken)
    assert res.exit_code == EXIT_PROBLEMS
    assert run.files_done == clean["run"].files_done


def test_a_carve_chunk_fails(client: Any, sample: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    faulty = FaultyClient(client, "carve")
    run, res = triage(faulty, sample, tmp_path / "out")
    chunk = faulty.injected[0]
    assert res.exit_code == EXIT_PROBLEMS
    assert new_problems(clean, res) == [
        f"{run.ref.path}: carving bytes {chunk.start}-{chunk.end} failed: RuntimeError: injected fault"]
    lost = differing(clean, res)
    assert all(clean["rows"][k]["source"] == "carved" and chunk.start <= clean["rows"][k]["offset"] < chunk.end
               for k in lost)
    assert run.files_done == clean["run"].files_done
