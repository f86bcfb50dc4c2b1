"""An encrypted volume nobody could unlock counts towards the device's rank: named first in the device's reasons
(summary.json, hence the queue's status and the dashboard) and lifting its tier to ``ranking.encrypted-floor``;
``triage rank`` keeps it; once unlocked it no longer counts."""

from __future__ import annotations

import json
import shutil

import pytest

from triage.ranking import with_locked_volumes
from triage.rules.rulefile import load_rules
from triage_test_fixtures.encrypted import PASSPHRASE, build_luks_disk


def test_locked_volumes_lift_the_device_and_lead_its_reasons(tmp_path):
    rules = load_rules(None, state=tmp_path)
    base = {"score": 5, "tier": "unknown", "tier_rank": 2, "reasons": ["3 picture(s)"], "counts": {}}
    got = with_locked_volumes(dict(base), {2: "ok", 3: "encrypted: LUKS2 (id u-1); no key given",
                                           4: "encrypted? no filesystem and high-entropy data throughout"},
                              rules, "likely-notable")
    assert (got["tier"], got["tier_rank"], got["score"]) == ("likely-notable", 1, rules.likely)
    assert got["reasons"][0] == ("2 encrypted volume(s) not unlocked (partition 3: LUKS2, partition 4: possibly "
                                 "encrypted): their files are not triaged")
    assert [v["partition"] for v in got["encrypted"]] == [3, 4] and got["counts"]["encrypted_locked"] == 2
    notable = with_locked_volumes({**base, "score": 80, "tier": "notable", "tier_rank": 0}, {3: "encrypted: X; y"},
                                  rules, "likely-notable")
    assert (notable["tier"], notable["score"]) == ("notable", 80)  # never lowered
    plain = with_locked_volumes(dict(base), {2: "ok"}, rules, "likely-notable")
    assert (plain["tier"], plain["encrypted"], plain["reasons"]) == ("unknown", [], ["3 picture(s)"])
    unlifted = with_locked_volumes(dict(base), {3: "encrypted: LUKS1; no key given"}, rules, None)
    assert unlifted["tier"] == "unknown" and unlifted["reasons"][0].startswith("1 encrypted volume(s)")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="no cryptsetup")
def test_a_locked_device_ranks_higher_than_the_same_device_unlocked(tmp_path, triage_cli):
    disk = build_luks_disk(tmp_path / "img", "luks1")
    part, rnd = disk.partitions["luks"], disk.partitions["random"]
    locked = triage_cli("run", disk.path, "-o", tmp_path / "locked", "--no-progress", "--no-reports")
    opened = triage_cli("run", disk.path, "-o", tmp_path / "open", "--no-progress", "--no-reports",
                        "--key", f"{part}=passphrase:{PASSPHRASE}")
    assert locked.returncode == opened.returncode == 4, locked.stderr + opened.stderr
    rk = json.loads((tmp_path / "locked" / "summary.json").read_text())["ranking"]
    ro = json.loads((tmp_path / "open" / "summary.json").read_text())["ranking"]
    assert [v["partition"] for v in rk["encrypted"]] == [part, rnd]
    assert [v["partition"] for v in ro["encrypted"]] == [rnd]  # the random partition stays unknown
    assert rk["reasons"][0].startswith(f"2 encrypted volume(s) not unlocked (partition {part}: LUKS1")
    assert rk["tier"] == "likely-notable" and rk["tier_rank"] <= ro["tier_rank"]
    again = triage_cli("rank", tmp_path / "locked", "--json", cluster=False)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "locked" / "summary.json").read_text())["ranking"]["encrypted"] == rk["encrypted"]
