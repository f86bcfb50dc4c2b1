"""State directory resolution: --home, then TRIAGE_HOME, then XDG_DATA_HOME, then ~/.local/share."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.rules.home import hashsets_dir, state_dir


def test_explicit_home_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIAGE_HOME", str(tmp_path / "env"))
    assert state_dir(tmp_path / "flag") == tmp_path / "flag"
    assert hashsets_dir(str(tmp_path / "flag")) == tmp_path / "flag" / "hashsets"


def test_env_then_xdg_then_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRIAGE_HOME", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "env"
    monkeypatch.delenv("TRIAGE_HOME")
    assert state_dir(None) == tmp_path / "xdg" / "triage"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert state_dir("") == tmp_path / "user" / ".local" / "share" / "triage"


def test_relative_home_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert state_dir("rel") == tmp_path / "rel"
    assert state_dir("rel").is_absolute()
