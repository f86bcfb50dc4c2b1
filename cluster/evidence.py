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

from triage.rules.errors import ClusterError
from triage.workers.pathmap import EvidencePlugin, fingerprint
from triage.workers.refs import ImageRef

log = logging.getLogger(__name__)


def publish(client: Any, refs: Iterable[ImageRef]) -> None:
    """Register each image's fingerprint with every worker (idempotent: a re-run replaces it)."""
    for ref in refs:
        plugin = EvidencePlugin(fingerprint(ref))
        try:
            client.register_plugin(plugin, name=plugin.name)
        except OSError as exc:
            raise ClusterError(f"{ref.path}: could not hand the image's fingerprint to the workers ({exc})") from exc
        log.debug("published fingerprint of %s as %s", ref.path, plugin.name)
