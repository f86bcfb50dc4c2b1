"""``triage hashsets`` run as a subprocess, the way an examiner runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def triage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("triage")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "triage.cli.main"]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120)


def test_help_has_examples_and_formats() -> None:
    out = triage("hashsets", "--help")
    assert out.returncode == 0 and "triage hashsets import" in out.stdout and "examples:" in out.stdout
    out = triage("hashsets", "import", "--help")
    assert out.returncode == 0
    for name in ("nsrl-rdsv3", "nsrl-rds2", "hashdeep", "md5sum", "bare", "csv", "vics", "images"):
        assert name in out.stdout


def test_import_list_remove_round_trip(tmp_path: Path, samples) -> None:
    home = str(tmp_path / "home")
    hashes = samples.hashes("sha1", 20)
    source = tmp_path / "list.txt"
    source.write_text("\n".join(hashes) + "\n")

    out = triage("hashsets", "import", str(source), "--name", "nsrl", "--category", "known-good", "--home", home)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"imported {source} into nsrl (known-good, bare): 20 entries; set now holds sha1 20"

    out = triage("hashsets", "import", str(source), "--name", "nsrl", "--category", "known-good", "--home", home)
    assert out.returncode == 0 and "nothing to do" in out.stdout

    out = triage("hashsets", "--home", home, "list")
    assert out.returncode == 0
    header, row = out.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "CATEGORY", "MD5"] and row.split()[:6] == ["nsrl", "known-good", "0", "20", "0", "0"]

    out = triage("hashsets", "list", "--json", "--home", home)
    (listed,) = json.loads(out.stdout)
    assert listed["name"] == "nsrl" and listed["counts"] == {"sha1": 20}
    assert listed["sources"][0]["path"] == str(source) and listed["sources"][0]["format"] == "bare"

    out = triage("hashsets", "remove", "nsrl", "--home", home)
    assert out.returncode == 0 and out.stdout.startswith("removed nsrl")
    out = triage("hashsets", "remove", "nsrl", "--home", home)
    assert out.returncode == 3 and out.stderr.strip() == "triage: error: no hash set named 'nsrl' (none installed)"
    out = triage("hashsets", "list", "--home", home)
    assert out.returncode == 0 and out.stdout.startswith("no hash sets in")


def test_bad_input_is_one_line_exit_3(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    bad = tmp_path / "vics.json"
    bad.write_text('{"value": [ {"MD5": ')
    out = triage("hashsets", "import", str(bad), "--name", "vic", "--category", "known-bad", "--home", home)
    assert out.returncode == 3 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"triage: error: {bad}: invalid JSON")
    out = triage("hashsets", "import", str(bad), "--name", "vic", "--category", "known-bad", "--format", "nope", "--home", home)
    assert out.returncode == 3 and "unknown hash-set format 'nope'; known: bare, csv," in out.stderr
    out = triage("hashsets", "import", str(bad), "--name", "vic", "--category", "evil", "--home", home)
    assert out.returncode == 2  # argparse usage error


def test_env_home_and_json_report(tmp_path: Path, samples) -> None:
    source = tmp_path / "x.md5"
    source.write_text("\n".join(f"{h}  file{i}" for i, h in enumerate(samples.hashes("md5", 5))) + "\n")
    env = {**os.environ, "TRIAGE_HOME": str(tmp_path / "envhome")}
    out = triage("hashsets", "import", str(source), "--name", "x", "--category", "notable", "--json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["format"] == "md5sum" and report["counts"] == {"md5": 5} and report["noop"] is False
    assert (tmp_path / "envhome" / "hashsets" / "catalog.sqlite").exists()
