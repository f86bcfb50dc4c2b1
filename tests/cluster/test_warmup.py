"""Workers of the embedded cluster do their one-time start-up work as they start, not in a first task."""

from __future__ import annotations

from triage.cluster.connect import connect


def _warmed() -> dict:
    import sys

    from triage.workers import warmup

    finished = warmup.DONE.wait(20)
    from triage.workers.carve import scanner
    from triage.workers.magictyper import shared

    return {"finished": finished, "walk": "triage.workers.walk" in sys.modules,
            "carving": "triage.workers.carving" in sys.modules, "magic": shared.cache_info().currsize,
            "finder": scanner.finder.cache_info().currsize}


def test_a_local_worker_is_warm_before_its_first_task() -> None:
    """No task has run on the fresh workers, yet each has imported the task modules, analysed the magic
    database and compiled the carving scan: what the first task of every run used to pay for."""
    with connect(workers=2) as client:
        states = client.run(_warmed)
        assert len(states) == 2
        for state in states.values():
            assert state == {"finished": True, "walk": True, "carving": True, "magic": 1, "finder": 1}
        assert client.run(lambda dask_worker: len(dask_worker.state.tasks)) == dict.fromkeys(states, 0)
