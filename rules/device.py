"""A device's own score and tier, from its ranked files: what to open first across a backlog.

A device is as urgent as the most urgent thing on it, so its score is its top
file's score and its tier that file's tier; the reasons say how much there is
behind it (counts of notable and likely-notable files, exact known-bad hits,
near-duplicates, pictures and documents the user made), because ten notable
files on one phone and one on another are not the same morning's work.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from triage.rules.ranking import BAND_RULE, derive
from triage.rules.rulefile import TIERS, RuleSet

TOP_REASONS = 5


def device_ranking(files: pa.Table, rules: RuleSet) -> dict[str, Any]:
    """The ``ranking`` entry of summary.json for a ranked files table."""
    n = files.num_rows
    tiers = files.column("tier").to_pylist()
    scores = np.asarray(files.column("score").to_numpy(zero_copy_only=False), dtype=np.int64) if n else np.zeros(0)
    by_tier = Counter(tiers)
    ctx = derive(files, rules)
    kind = np.asarray(ctx["kind"].to_numpy(zero_copy_only=False), dtype=object)
    location = np.asarray(ctx["location"].to_numpy(zero_copy_only=False), dtype=object)
    known = np.asarray(files.column("known").to_numpy(zero_copy_only=False), dtype=object)
    near = np.asarray(pc.is_valid(files.column("phash_match")).to_numpy(zero_copy_only=False), dtype=bool)
    source = np.asarray(files.column("source").to_numpy(zero_copy_only=False), dtype=object)
    user_made = (np.isin(kind, ["picture", "document", "video"]) & (location == "user")
                 & (known != "known-good") & (source != "carved"))
    counts = {
        "notable": by_tier.get("notable", 0),
        "likely_notable": by_tier.get("likely-notable", 0),
        "unknown": by_tier.get("unknown", 0),
        "known_good": by_tier.get("known-good", 0),
        "known_bad_exact": int((known == "known-bad").sum()),
        "notable_set": int((known == "notable").sum()),
        "near_duplicates": int(near.sum()),
        "user_pictures_documents": int(user_made.sum()),
    }
    if n:
        top = int(np.lexsort((np.arange(n), -scores))[0])
        score, tier = int(scores[top]), tiers[top]
    else:
        score, tier = 0, "unknown"
    reasons = []
    for key, text in (("known_bad_exact", "exact known-bad hash hit(s)"),
                      ("near_duplicates", "near-duplicate(s) of reference pictures"),
                      ("notable_set", "file(s) in notable sets"),
                      ("notable", "notable file(s)"),
                      ("likely_notable", "likely-notable file(s)"),
                      ("user_pictures_documents", "picture(s), video(s) or document(s) in user folders")):
        if counts[key]:
            reasons.append(f"{counts[key]:,} {text}")
    return {
        "score": score,
        "tier": tier,
        "tier_rank": TIERS.index(tier),
        "reasons": reasons,
        "counts": counts,
        "top_rules": _top_rules(files),
        "rules": [dict(f) for f in rules.files],
    }


def _top_rules(files: pa.Table) -> list[dict[str, Any]]:
    """The rules behind the notable and likely-notable files, most frequent first."""
    wanted = pc.is_in(files.column("tier"), value_set=pa.array(["notable", "likely-notable"]))
    picked = files.filter(wanted).column("reasons")
    if len(picked) == 0:
        return []
    flat = pc.list_flatten(picked)
    rule = pc.struct_field(flat, [0]).to_pylist()
    counts = Counter(r for r in rule if r != BAND_RULE)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    return [{"rule": r, "files": c} for r, c in ranked]
