"""One small registry helper, so every plugin kind behaves alike.

Image formats, volume systems, carvers, hash-set formats and report writers are
each a module-level :class:`Registry` filled by a class decorator. They all act
the same way: a name registered twice is an error naming both classes; an
unknown name is an error that lists the known ones; iteration is in registration
order (which is the order formats are tried in); the plugins of a package can be
loaded lazily, one module per plugin, the first time the registry is asked.
Compare plaso's ``parsers/manager.py`` and dfVFS's ``path/factory.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from triage.rules.errors import InputError, TriageError

T = TypeVar("T")


class DuplicateNameError(TriageError):
    """Two plugins claim the same name: a packaging bug, reported when the second registers."""


class Registry(Generic[T]):
    """Name -> plugin. ``kind`` names the plugins in messages ("carver", "image format")."""

    def __init__(self, kind: str, *, unknown: type[TriageError] = InputError,
                 duplicate: type[TriageError] = DuplicateNameError, package: str | None = None) -> None:
        self.kind = kind
        self._unknown = unknown
        self._duplicate = duplicate
        self._package = package
        self._loaded = package is None
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` under ``name``; a duplicate name raises :class:`DuplicateNameError`."""
        if not isinstance(name, str) or not name:
            raise TriageError(f"{self.kind} name must be a non-empty str, not {name!r}")
        if name in self._items:
            raise self._duplicate(f"{self.kind} {name!r} registered twice: {_label(self._items[name])} "
                                     f"and {_label(item)}")
        self._items[name] = item
        return item

    def register(self, name: str | None = None, *, instance: bool = False) -> Callable[[type], type]:
        """Class decorator: registers the class (or one instance of it) under ``name``.

        Without ``name`` the class's own ``NAME`` attribute is used; with it, ``NAME``
        is set on the class, so a plugin states its name once.
        """

        def decorate(cls: type) -> type:
            key = name if name is not None else getattr(cls, "NAME", None)
            if name is not None:
                cls.NAME = name  # type: ignore[attr-defined]
            self.add(key, cls() if instance else cls)  # type: ignore[arg-type]
            return cls

        return decorate

    def load(self) -> None:
        """Import every non-underscore module of the plugin package once."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self._package)  # type: ignore[arg-type]
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if not info.ispkg and not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")

    def get(self, name: str) -> T:
        """The plugin called ``name``; an unknown name lists the known ones."""
        self.load()
        try:
            return self._items[name]
        except KeyError:
            raise self._unknown(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def pop(self, name: str) -> T | None:
        """Forget ``name`` (a test's scratch plugin); None when it was not registered."""
        return self._items.pop(name, None)

    def values(self) -> list[T]:
        """The plugins in registration order."""
        self.load()
        return list(self._items.values())

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self.load()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, plugin) in registration order."""
        self.load()
        return list(self._items.items())

    def __iter__(self) -> Iterator[T]:
        self.load()
        return iter(list(self._items.values()))

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._items

    def __len__(self) -> int:
        self.load()
        return len(self._items)


def _label(item: object) -> str:
    cls = item if isinstance(item, type) else type(item)
    return f"{cls.__module__}.{cls.__qualname__}"
