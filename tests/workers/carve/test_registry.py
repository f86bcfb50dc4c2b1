"""The carver registry: discovery, duplicates, unknown names, decorator checks."""

from __future__ import annotations

import pytest

from triage.rules.errors import InputError, TriageError
from triage.workers.carve import BytesReader, registry
from triage.workers.carve.registry import CARVERS, Carver, DuplicateCarverError, UnknownCarverError, carver


@pytest.fixture
def scratch_name() -> object:
    """A name registered by a test and removed afterwards, so the registry stays as shipped."""
    name = "test-scratch"
    yield name
    CARVERS.pop(name)


def test_discovery_finds_every_carver_module() -> None:
    assert registry.names() == ["gif", "jpeg", "pdf", "png", "sqlite", "zip"]


@pytest.mark.parametrize("name", ["gif", "jpeg", "pdf", "png", "sqlite", "zip"])
def test_each_carver_declares_itself(name: str) -> None:
    c = registry.get(name)
    assert c.NAME == name and c.DESCRIPTION and c.EXTENSION and "/" in c.MIME
    assert c.HEADERS and all(isinstance(h, bytes) for h in c.HEADERS) and c.MAX_SIZE > 0


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(UnknownCarverError) as info:
        registry.get("jpg")
    assert isinstance(info.value, InputError)
    assert "'jpg'" in str(info.value) and "jpeg, pdf, png" in str(info.value)


def test_duplicate_name_is_an_error(scratch_name: str) -> None:
    @carver(scratch_name, headers=[b"XX"], max_size=10)
    class First(Carver):
        DESCRIPTION, EXTENSION, MIME = "x", "x", "application/x"

    with pytest.raises(DuplicateCarverError, match="registered twice"):

        @carver(scratch_name, headers=[b"YY"], max_size=10)
        class Second(Carver):
            DESCRIPTION, EXTENSION, MIME = "y", "y", "application/y"

    with pytest.raises(DuplicateCarverError):
        carver("jpeg", headers=[b"\xff\xd8"], max_size=10)(First)


def test_registered_carver_is_used_by_scan(scratch_name: str, caplog: pytest.LogCaptureFixture) -> None:
    from triage.workers.carve import scan

    @carver(scratch_name, headers=[b"MAGIC!"], max_size=64)
    class Fixed(Carver):
        DESCRIPTION, EXTENSION, MIME = "fixed 16-byte record", "rec", "application/x-rec"

        def carve(self, reader: object, start: int) -> int | None:
            return 16

    data = bytes(10) + b"MAGIC!" + bytes(30) + b"MAGIC!" + bytes(3)
    found = scan(BytesReader(data), carvers=[scratch_name])
    assert [(c.offset, c.length, c.type, c.extension) for c in found] == [(10, 16, scratch_name, "rec")]
    # the second record would run past the end: a carver bug, dropped with a warning, not reported
    assert "out-of-bounds length 16 at offset 46" in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [dict(name="", headers=[b"x"], max_size=1), dict(name="n", headers=[], max_size=1),
     dict(name="n", headers=[""], max_size=1), dict(name="n", headers=[b"x"], max_size=0)],
)
def test_decorator_arguments_are_checked(kwargs: dict) -> None:
    name = kwargs.pop("name")
    with pytest.raises(TriageError):
        carver(name, **kwargs)


def test_decorated_class_must_be_a_complete_carver(scratch_name: str) -> None:
    with pytest.raises(TriageError, match="must subclass"):
        carver(scratch_name, headers=[b"x"], max_size=1)(object)  # type: ignore[type-var]

    class NoMime(Carver):
        DESCRIPTION, EXTENSION = "x", "x"

    with pytest.raises(TriageError, match="lacks MIME"):
        carver(scratch_name, headers=[b"x"], max_size=1)(NoMime)
    assert scratch_name not in CARVERS
