"""Triage one image end to end: plan (:mod:`triage.runstate`), drive (:mod:`triage.driver`),
finish (:mod:`triage.finish`). ``triage run`` and the tests call :func:`run_image`; the
dispatcher drives many :class:`ImageRun` objects with the same driver."""

from __future__ import annotations

from pathlib import Path

from triage.driver import Driver
from triage.finish import EXIT_EWF_MISMATCH, EXIT_OK, EXIT_PROBLEMS, RunResult, finalize
from triage.runstate import ImageRun, Notify
from triage.settings import CARVE_MODES

__all__ = ["CARVE_MODES", "EXIT_EWF_MISMATCH", "EXIT_OK", "EXIT_PROBLEMS", "ImageRun", "RunResult", "run_image"]


def run_image(image: str | Path, out: str | Path, client: "distributed.Client",  # noqa: F821
              overwrite: bool = False, workdir: str | Path | None = None,
              carve: str | None = None, extract_carved: bool = False, home: str | Path | None = None,
              notify: Notify | None = None, resume: bool = True) -> RunResult:
    """Triage one image into ``out``. Raises ImageError when the image cannot be used at all.

    Checkpoints go to ``workdir`` (default ``out/.work``) and stay there until the results are
    committed: the same call after a crash or Ctrl-C continues from the finished tasks, to
    byte-identical tables, unless ``resume`` is False (or the image, options, tool version or
    known-item sets changed: then it starts over).
    """
    run = ImageRun(image, out, overwrite=overwrite, workdir=workdir, carve=carve,
                   extract_carved=extract_carved, home=home, notify=notify, resume=resume)
    driver = Driver(client)
    try:
        driver.drive(run)
        return finalize(run)
    except BaseException:
        driver.drop(run)
        run.abort()
        raise
