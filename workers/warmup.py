"""A worker's one-time start-up work done as it starts, not inside its first task.

A fresh worker process used to pay, in the first task of every run, for importing
the task modules (pytsk3, pyarrow, Pillow, the libyal bindings), pyarrow's first
conversion of Python lists (which looks for pandas and imports it where installed),
analysing libmagic's compiled database for the reduced ones
(:mod:`triage.workers.magictyper`) and compiling the carving scan's Hyperscan
database: about 1.5 s on this machine, on the critical path of every cold
`triage run`, while the driver itself was still importing and opening the image.

This module is a distributed *preload* (``LocalCluster(preload=[__name__])`` in
:mod:`triage.cluster.connect`, or ``dask worker --preload triage.workers.warmup``):
``dask_setup`` runs as a worker starts and only starts a daemon thread, so the
worker joins at once and the warm-up overlaps with the driver's own start. A task
that needs a module still being imported waits on Python's import lock, and the
per-process caches (``functools.cache``) give the same answer whoever fills them,
so nothing a task computes depends on whether the warm-up has finished. A failure
here is logged and forgotten: the first task then does the same work itself and
reports it as it always did.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

#: set when the warm-up thread has finished (tests wait on it; tasks never do)
DONE = threading.Event()


def warm() -> None:
    """Import what tasks import and fill the per-process caches they fill."""
    try:
        import pyarrow as pa

        pa.array([0])  # pyarrow's first list conversion checks for (and imports) pandas
        from triage.workers import (  # noqa: F401 - imported for their side effect: loaded once, now
            archives, carving, containers, content, extraction, media, refs, volumes, vss, walk)
        from triage.workers.carve import registry, scanner
        from triage.workers.magictyper import shared

        shared()  # the analysed magic database and its literal scanner
        headers = sorted({h for c in registry.resolve(None) for h in c.HEADERS})
        scanner.finder(tuple(headers))  # the default carvers' header scan, as scan() asks for it
    except Exception as exc:  # noqa: BLE001 - a warm-up never fails a worker; the first task redoes it
        log.debug("worker warm-up stopped: %s: %s", type(exc).__name__, exc)
    finally:
        DONE.set()


def dask_setup(worker: object) -> None:
    """distributed's preload hook: start the warm-up beside the worker, do not hold its start."""
    threading.Thread(target=warm, name="triage-warm-up", daemon=True).start()
