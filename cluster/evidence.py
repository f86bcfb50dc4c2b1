"""Hand the workers what the dispatcher saw of each image, so a worker with a different copy refuses it.

The check itself runs on the workers (:func:`triage.workers.pathmap.localize`, where
each worker also maps the dispatcher's paths to its own); this side only computes the
fingerprint from the control plane's copy and registers it as a worker plugin, which
the scheduler also hands to workers that join later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from triage.workers.evidenceplugin import EvidencePlugin
from triage.workers.pathmap import fingerprint
from triage.workers.refs import ImageRef

log = logging.getLogger(__name__)


def publish(client: Any, refs: Iterable[ImageRef]) -> None:
    """Register each image's fingerprint with every worker (idempotent: a re-run replaces it); never raises."""
    for ref in refs:
        plugin = EvidencePlugin(fingerprint(ref))
        try:
            client.register_plugin(plugin, name=plugin.name)
        except Exception as exc:  # noqa: BLE001 - e.g. a worker dying mid-broadcast
            # the scheduler keeps the plugin and hands it to every worker that (re)joins; a worker that
            # missed it still checks the sizes, so this never stops a run
            log.warning("%s: fingerprint not confirmed by every worker (%s: %s)", ref.path, type(exc).__name__, exc)
            continue
        log.debug("published fingerprint of %s as %s", ref.path, plugin.name)
