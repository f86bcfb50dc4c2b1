"""Keys for encrypted volumes, and the decrypted media of a LUKS1 or BitLocker volume.

A key is given per partition (``--key 3=passphrase:...``). It must reach the
worker processes without passing through a log, a task description, a checkpoint
or the audit record, so it never travels inside a task: the CLI installs the
keys on every worker once, as a Dask worker plugin (:class:`triage.workers.keyring.Keyring`), and
``open_fs`` looks one up by (image path, partition index) when a partition turns
out to be encrypted. Keys print as ``<redacted>``.

Unlocked through libyal: LUKS1 (libluksde; it does not read LUKS2 headers) and
BitLocker incl. To Go (libbde: password, recovery password or .BEK startup key);
LUKS2 by :mod:`triage.workers.luks2` from the on-disk format.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from triage.rules.errors import FilesystemError, InputError
from triage.workers.encryption import Encrypted
from triage.workers.formats import HandleMedia, Media, RegionFile, oneline

log = logging.getLogger(__name__)

KINDS = ("passphrase", "recovery", "keyfile")
#: the name of the key plugin on the workers (:class:`triage.workers.keyring.Keyring`); a dispatcher adds ``-<job id>``
KEYRING = "triage-keyring"


@dataclass(frozen=True)
class VolumeKey:
    """One secret: a passphrase, a BitLocker recovery password, or a key file's path."""

    kind: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"--key: unknown key kind {self.kind!r}; known: {', '.join(KINDS)}")

    def __repr__(self) -> str:
        return f"VolumeKey({self.kind}, <redacted>)"


def parse_key(spec: str) -> tuple[int, VolumeKey]:
    """``PARTITION=[passphrase:|recovery:|keyfile:]SECRET`` -> (partition index, key). Errors never echo the secret."""
    index, sep, rest = spec.partition("=")
    if not sep or not index.strip().isdigit():
        raise InputError("--key: expected PARTITION=SECRET with PARTITION the volumes.parquet index (e.g. 3=passphrase:...)")
    kind, colon, secret = rest.partition(":")
    if not colon or kind not in KINDS:
        kind, secret = "passphrase", rest
    if kind == "keyfile" and not Path(secret).is_file():
        raise InputError(f"--key: key file for partition {index.strip()} not found: {secret}")
    return int(index), VolumeKey(kind, secret)


_KEYS: dict[tuple[str, int], VolumeKey] = {}
_LOCK = threading.Lock()


def install(keys: dict[tuple[str, int], VolumeKey]) -> None:
    """Make ``keys`` ((image path, partition index) -> key) known to this process."""
    with _LOCK:
        _KEYS.update({(str(Path(p)), i): k for (p, i), k in keys.items()})


def forget(keys: dict[tuple[str, int], VolumeKey]) -> None:
    with _LOCK:
        for p, i in keys:
            _KEYS.pop((str(Path(p)), i), None)


def key_for(image_path: str, index: int) -> VolumeKey | None:
    with _LOCK:
        return _KEYS.get((str(Path(image_path)), index))


def open_volume(enc: Encrypted, read: Callable[[int, int], bytes], offset: int, length: int,
                key: VolumeKey) -> Media:
    """The decrypted media of the volume, or FilesystemError (with the partition's encrypted status) if the key fails."""
    region = RegionFile(read, offset, length)
    if enc.kind == "LUKS2":
        return _open_luks2(enc, read, offset, length, key)
    try:
        if enc.kind == "LUKS1":
            import pyluksde

            handle = pyluksde.volume()
            handle.set_password(_secret(key, allow=("passphrase", "keyfile")))
        elif enc.kind.startswith("BitLocker"):
            import pybde

            handle = pybde.volume()
            if key.kind == "recovery":
                handle.set_recovery_password(key.secret)
            elif key.kind == "keyfile":
                handle.read_startup_key(key.secret)
            else:
                handle.set_password(key.secret)
        else:
            raise FilesystemError(enc.status(f"a key was given, but {enc.kind} volumes cannot be unlocked by this version"))
        handle.open_file_object(region)
    except (OSError, IOError, ValueError) as exc:
        raise FilesystemError(enc.status(f"cannot be opened with the key given ({oneline(exc)})")) from exc
    if handle.is_locked():
        handle.close()
        raise FilesystemError(enc.status("the key given does not unlock it"))
    log.info("unlocked a %s volume at byte %d", enc.kind, offset)
    return HandleMedia(handle)


def _open_luks2(enc: Encrypted, read: Callable[[int, int], bytes], offset: int, length: int, key: VolumeKey) -> Media:
    from triage.workers.luks2 import open_luks2

    try:
        media = open_luks2(lambda o, n: read(offset + o, n), length, _secret(key, allow=("passphrase", "keyfile")))
    except FilesystemError as exc:
        raise FilesystemError(enc.status(str(exc))) from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise FilesystemError(enc.status(f"cannot be opened with the key given ({oneline(exc)})")) from None
    log.info("unlocked a LUKS2 volume at byte %d", offset)
    return media


def _secret(key: VolumeKey, allow: tuple[str, ...]) -> str:
    if key.kind not in allow:
        raise FilesystemError(f"a {key.kind} key does not apply to this volume (use one of: {', '.join(allow)})")
    if key.kind == "keyfile":
        return Path(key.secret).read_text().rstrip("\n")
    return key.secret
