"""Per-thread caches of open evidence handles, bounded and closed when they fall out.

A worker opens an image (a TSK image, a pyewf/libyal handle, its segment files)
and its filesystems once and reuses them for every task of the same image
(dfVFS resolver-context style: the description travels, the handle never does).
A ``triage serve`` worker sees hundreds of images, so each cache keeps only the
most recently used few and closes the rest. A filesystem reads through its
image, so when an image falls out, that thread's filesystems on it go first.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

#: open images per worker thread (each may hold many segment files); a run reads one image at a time.
#: triage.yaml ``cluster.open-images`` overrides it, read on the worker as path-map is
MAX_OPEN_IMAGES = 4
#: open filesystems per worker thread: every partition of the few images above (``cluster.open-filesystems``)
MAX_OPEN_FILESYSTEMS = 32

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Least-recently-used handles, closed by ``close`` when evicted or discarded."""

    def __init__(self, capacity: int, close: Callable[[K, V], None]) -> None:
        self.capacity = capacity
        self._close = close
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K, opener: Callable[[], V]) -> V:
        """The handle for ``key``, opened by ``opener`` on a miss (an opener's error caches nothing)."""
        try:
            self._items.move_to_end(key)
            return self._items[key]
        except KeyError:
            pass
        value = opener()
        self._items[key] = value
        while len(self._items) > self.capacity:
            old_key, old = self._items.popitem(last=False)
            self._close(old_key, old)
        return value

    def discard(self, keep: Callable[[K], bool]) -> None:
        """Close and drop every entry whose key ``keep`` rejects."""
        for key in [k for k in self._items if not keep(k)]:
            self._close(key, self._items.pop(key))

    def clear(self) -> None:
        self.discard(lambda _k: False)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


_local = threading.local()


def _release(obj: Any) -> None:
    fn = getattr(obj, "release", None)
    try:
        if fn is not None:
            fn()
        elif hasattr(obj, "close"):
            obj.close()
    except (OSError, RuntimeError) as exc:  # closing a read-only handle cannot lose evidence; say and go on
        log.warning("closing a cached handle failed: %s", exc)


def _close_image(ref: Any, img: Any) -> None:
    filesystems().discard(lambda vol: vol.image != ref)
    _release(img)


def _capacity(key: str, default: int) -> int:
    """A cache size from the worker's dask config (triage.yaml or DASK_TRIAGE__CLUSTER__...), at least 1."""
    import dask

    value = dask.config.get(f"triage.cluster.{key}", default)
    try:
        return max(1, int(value if value is not None else default))
    except (TypeError, ValueError):
        log.warning("triage.cluster.%s: expected a whole number, got %r; using %d", key, value, default)
        return default


def images() -> LRU:
    """This thread's open TSK images, keyed by ImageRef."""
    cache = getattr(_local, "images", None)
    if cache is None:
        cache = _local.images = LRU(_capacity("open-images", MAX_OPEN_IMAGES), _close_image)
    return cache


def filesystems() -> LRU:
    """This thread's open TSK filesystems, keyed by VolumeRef (a plain FS_Info is freed with its last
    reference; one inside an unlocked volume also closes its decryption handle)."""
    cache = getattr(_local, "filesystems", None)
    if cache is None:
        cache = _local.filesystems = LRU(_capacity("open-filesystems", MAX_OPEN_FILESYSTEMS), lambda _k, fs: _release(fs) if hasattr(fs, "release") else None)
    return cache


def clear() -> None:
    """Close every handle this thread holds (filesystems first: they read through the images)."""
    filesystems().clear()
    images().clear()
