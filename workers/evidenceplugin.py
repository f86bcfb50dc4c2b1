"""The worker plugin that carries one image's fingerprint to every worker (see :mod:`triage.workers.pathmap`).

A module of its own because it is the only part of the path checks that needs
``distributed`` at import time: ``triage.workers.pathmap`` is imported by the
queue and so by every ``triage`` verb, and importing ``distributed`` there cost
each ``triage status`` or ``triage submit`` about half a second of start-up.
Workers unpickle the plugin by this module's name.
"""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from triage.workers.pathmap import Fingerprint, plugin_name


class EvidencePlugin(WorkerPlugin):
    """A worker plugin carrying one image's :class:`Fingerprint` to every worker, including later ones."""

    def __init__(self, fp: Fingerprint) -> None:
        self.fp = fp
        self.name = plugin_name(fp.path)
