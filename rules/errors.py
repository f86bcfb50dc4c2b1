"""The one exception hierarchy, rooted at :class:`TriageError`.

It lives in the lowest layer (``triage.rules``) because every layer raises these:
workers may import rules, the control plane may import everything, and nothing
here imports anything else. Each message names the file and the reason in one
line, because the CLI prints ``str(exc)`` and nothing more.
"""

from __future__ import annotations


class TriageError(Exception):
    """Base of every error the CLI reports as one line with a documented exit code."""

    #: process exit code the CLI uses for this class of error (see README "Exit codes")
    exit_code = 1


class InputError(TriageError):
    """The user's input (a path, an option, an output directory) cannot be used."""

    exit_code = 3


class ImageError(InputError):
    """An evidence image cannot be opened or read: missing, unsupported, truncated, corrupt."""


class UnsupportedFormatError(ImageError):
    """A recognised container format this version cannot read yet (VHD, VMDK, QCOW, DMG)."""


class VolumeError(TriageError):
    """A volume system asked for by name is unknown (the registry lists the known ones)."""

    exit_code = 4


class FilesystemError(TriageError):
    """A filesystem cannot be opened or walked; becomes a status on its partition."""

    exit_code = 4


class HashSetFormatError(InputError):
    """A known-item hash set file is malformed or of an unknown format."""


class RuleFileError(InputError):
    """A ranking rule file cannot be used: bad YAML, an unknown key, field or operator (names the line)."""


class ResultsError(InputError):
    """A results folder cannot be ranked or reported: half-written, from an older version, damaged."""


class ImageHashError(TriageError):
    """One picture could not be perceptually hashed (not an image, corrupt, too many pixels)."""


class ClusterError(TriageError):
    """No Dask cluster could be started or reached."""

    exit_code = 5


def describe(exc: BaseException) -> str:
    """An exception as one line, ``Type: message`` with its whitespace folded: how a failed task is named
    in a status, whether the control plane saw the task fail or a worker caught it inside a batch."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
