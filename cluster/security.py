"""TLS on the wire: a ``distributed.security.Security`` from a site's certificate files.

Why TLS and not only a firewall: tasks carry paths of evidence and results carry
hashes and file names of a case; on a shared network both are case material.
Dask's TLS is mutual: the scheduler, every worker and every client present a
certificate signed by the site's CA (see :mod:`triage.cluster.certs`), so a
machine without one can neither join as a worker nor submit or read work.
``require_encryption`` makes this client refuse a plain ``tcp://`` address too,
so a mistyped address cannot silently send case data in the clear.

The scheduler and workers are started by dask's own CLI with the same files
(``dask scheduler --tls-ca-file ca.pem --tls-cert scheduler.pem --tls-key
scheduler-key.pem``); the files an operator starts from are in ``cluster/deploy/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from triage.rules.errors import ClusterError


def make_security(ca_file: str | Path | None, cert: str | Path | None, key: str | Path | None,
                  *, role: str = "client") -> Any:
    """A Security for ``role`` (client, scheduler or worker) from PEM files, or None when none is configured.

    Half a configuration (a CA but no certificate) is an error naming what is missing,
    never a silent fall-back to plain TCP.
    """
    given = {"ca-file": ca_file, "cert": cert, "key": key}
    if not any(given.values()):
        return None
    missing = [k for k, v in given.items() if not v]
    if missing:
        raise ClusterError(f"TLS half configured: triage.cluster.tls.{missing[0]} is not set "
                           f"(all of ca-file, cert, key are needed)")
    for name, value in given.items():
        p = Path(str(value)).expanduser()
        if not p.is_file():
            raise ClusterError(f"{p}: TLS {name} file not found (triage.cluster.tls.{name})")
        given[name] = str(p)
    from distributed.security import Security

    kwargs = {f"tls_{role}_cert": given["cert"], f"tls_{role}_key": given["key"]}
    return Security(tls_ca_file=given["ca-file"], require_encryption=True, **kwargs)
