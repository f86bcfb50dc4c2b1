"""Which triage, TSK and libewf every worker imports, and refusing a mixed cluster.

Why: a worker with another evidence-triage, pytsk3 or libewf than the client's can
produce a different table for the same image (a parser fix, a new column, a TSK
that walks a filesystem differently). Results must be byte-identical across runs,
so a job never starts on such a cluster. Dask's own check (``Client.get_versions``)
covers dask, distributed and Python, not our libraries; :func:`worker_versions` is
the same idea for ours, run in every worker process with ``Client.run``.

A worker that cannot even import this module (an older triage, or none) is named
as mixed too: it could not run the tasks either.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from triage.rules.errors import ClusterError

log = logging.getLogger(__name__)

#: the versions that decide a result; a difference in any refuses a job
CHECKED = ("evidence-triage", "pytsk3", "libewf")


def worker_versions() -> dict[str, str | None]:
    """The versions this process imports (run on each worker, and in the client for comparison)."""
    from importlib import metadata

    import dask
    import distributed

    import triage

    out: dict[str, str | None] = {
        "evidence-triage": triage.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "dask": dask.__version__,
        "distributed": distributed.__version__,
    }
    try:
        import pytsk3

        out["pytsk3"] = f"{metadata.version('pytsk3')} (TSK {pytsk3.TSK_VERSION_STR})"
    except Exception as exc:  # noqa: BLE001 - reported, not raised: a broken worker is still listed
        out["pytsk3"] = f"unavailable: {type(exc).__name__}"
    try:
        import pyewf

        out["libewf"] = str(pyewf.get_version())
    except Exception as exc:  # noqa: BLE001
        out["libewf"] = f"unavailable: {type(exc).__name__}"
    return out


def cluster_versions(client: Any, got: dict[str, Any] | None = None) -> dict[str, dict[str, str | None]]:
    """Versions per worker address; a worker that could not answer gets ``{"error": ...}``.

    A worker whose connection closed during the probe and that the scheduler then no longer
    lists died meanwhile (killed, its machine lost): it is left out, not named as mixed, as the
    rest of the cluster goes on without it. ``got``: the probe's answers (``Client.run``'s), when
    already asked.
    """
    if got is None:
        try:
            got = client.run(worker_versions, on_error="return")
        except OSError as exc:
            raise ClusterError(f"{client.scheduler.address}: the workers could not be asked for versions "
                               f"({exc})") from exc
    gone = departed(client, [a for a, v in got.items() if isinstance(v, OSError)])
    out: dict[str, dict[str, str | None]] = {}
    for addr, value in got.items():
        if addr in gone:
            log.warning("worker %s left while its versions were being checked", addr)
            continue
        if isinstance(value, BaseException):
            out[addr] = {"error": f"cannot run triage's version probe: {type(value).__name__}: "
                                  f"{' '.join(str(value).split())}"}
        else:
            out[addr] = value
    return out


def departed(client: Any, addrs: list[str], wait: float = 10.0) -> set[str]:
    """Of ``addrs`` (workers whose connection closed), those the scheduler stops listing within ``wait`` s."""
    if not addrs:
        return set()
    deadline = time.monotonic() + wait
    while True:
        listed = set(client.nthreads())  # as the driver's worker watch counts them (cluster.watch)
        gone = {a for a in addrs if a not in listed}
        if len(gone) == len(addrs) or time.monotonic() >= deadline:
            return gone
        time.sleep(0.2)


def differences(mine: dict[str, str | None], theirs: dict[str, str | None]) -> list[str]:
    """``name theirs != mine`` for every checked package that differs (or the probe's error)."""
    if "error" in theirs:
        return [str(theirs["error"])]
    return [f"{name} {theirs.get(name)} (client {mine.get(name)})" for name in CHECKED
            if theirs.get(name) != mine.get(name)]


def mixed_workers(client: Any, versions: dict[str, dict[str, str | None]] | None = None) -> dict[str, list[str]]:
    """Worker address -> what differs from this client, for the workers that differ."""
    mine = worker_versions()
    versions = cluster_versions(client) if versions is None else versions
    return {addr: diff for addr, v in sorted(versions.items()) if (diff := differences(mine, v))}


def check_cluster(client: Any) -> None:
    """Raise :class:`ClusterError` (one line) when a worker's checked versions differ from the client's."""
    mixed = mixed_workers(client)
    if not mixed:
        return
    first, diff = next(iter(mixed.items()))
    more = f" and {len(mixed) - 1} more worker(s)" if len(mixed) > 1 else ""
    raise ClusterError(f"{client.scheduler.address}: mixed cluster, refusing to start: worker {first} has "
                       f"{'; '.join(diff)}{more} (see 'triage cluster status')")
