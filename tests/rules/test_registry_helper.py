"""The shared registry helper: duplicates refused, unknown names list the known ones."""

from __future__ import annotations

import pytest

from triage.rules.errors import InputError
from triage.rules.registry import DuplicateNameError, Registry


def test_register_by_class_name_and_lookup() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        pass

    @reg.register()
    class Beta:
        NAME = "beta"

    assert reg.get("alpha") is Alpha and Alpha.NAME == "alpha"
    assert reg.get("beta") is Beta
    assert reg.names() == ["alpha", "beta"]
    assert [n for n, _ in reg.items()] == ["alpha", "beta"]
    assert "alpha" in reg and len(reg) == 2


def test_duplicate_name_names_both_classes() -> None:
    reg: Registry[type] = Registry("widget")

    @reg.register("same")
    class First:
        pass

    with pytest.raises(DuplicateNameError, match="widget 'same' registered twice: .*First and .*Second"):
        @reg.register("same")
        class Second:
            pass


def test_unknown_name_lists_known_ones() -> None:
    reg: Registry[object] = Registry("gadget")
    reg.add("x", object())
    reg.add("y", object())
    with pytest.raises(InputError, match=r"unknown gadget 'z'; known: x, y"):
        reg.get("z")


def test_instances_and_lazy_package_load() -> None:
    reg: Registry[object] = Registry("format", package="triage.rules.formats")
    assert not reg._loaded  # nothing imported until asked
    assert reg.names() == []  # the package's modules register elsewhere; loading imports them once
    assert reg._loaded
