"""Ranking: every row of files.parquet gets a score, a tier and the reasons that add up to the score.

The model is Autopsy's significance (notable / likely notable / none / known),
made explicit: a score is the sum of the weights of the rules a file meets,
then kept within the band of its tier, and that last adjustment is itself one
of the reasons. So the reasons of every row add up to its score, and an
examiner can check any ranking by hand. Tiers come first: a rule marked
``tier: notable`` (a known-bad hash, a near-duplicate of a reference picture,
a notable set) makes a file notable whatever else it scores; ``tier:
known-good`` (NSRL) pins it to score 0, below every unknown file (score >= 1).

:func:`rank_table` is pure (table + rules + reference times in, table out) and
vectorised (:mod:`triage.rules.conditions`), so it runs in the merge of a run
and again, without the image, in ``triage rank``. Output is deterministic: the
same table and rules give the same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from triage.rules.conditions import evaluate, match_globs
from triage.rules.rulefile import TIERS, RuleSet

RANK_COLUMNS = ("score", "tier", "reasons")
REASON_TYPE = pa.struct([pa.field("rule", pa.string()), pa.field("weight", pa.int32()),
                         pa.field("reason", pa.string())])
BAND_RULE = "tier-band"
_NS_PER_DAY = 86_400 * 10**9


def rank_table(files: pa.Table, rules: RuleSet, *, now: dt.datetime | None = None,
               since: dt.datetime | None = None, categories: pa.Array | None = None) -> pa.Table:
    """``files`` with ``score``, ``tier`` and ``reasons`` set (replaced if present, appended if not).

    ``now``: timestamps after it are ignored when finding the device's newest activity (a
    clock set to 2099 must not make every real file "old"); ``since``: "recent" means on or
    after this instead of within ``rules.recent_days`` of the newest activity;
    ``categories``: per row, the VICS/CAID category of its known-bad entry (or null).
    """
    n = files.num_rows
    ctx = derive(files, rules, now=now, since=since, categories=categories)
    weights = np.array([r.weight for r in rules.rules], dtype=np.int64)
    fired = np.zeros((len(rules.rules), n), dtype=bool)
    for k, rule in enumerate(rules.rules):
        fired[k] = evaluate(rule.when, ctx, n, rule)
    raw = weights @ fired if len(rules.rules) else np.zeros(n, dtype=np.int64)
    forced_notable = _any(fired, [r.tier == "notable" for r in rules.rules], n)
    forced_good = _any(fired, [r.tier == "known-good" for r in rules.rules], n) & ~forced_notable
    tier = np.where(forced_notable | (~forced_good & (raw >= rules.notable)), 0,
                    np.where(forced_good, 3, np.where(raw >= rules.likely, 1, 2)))
    lo = np.array([rules.notable, rules.likely, 1, 0])[tier]
    hi = np.array([100, rules.notable - 1, rules.likely - 1, 0])[tier]
    score = np.clip(raw, lo, hi)
    reasons = _reasons(rules, fired, score - raw, tier, lo, hi, ctx)
    out = files
    for name, arr in (("score", pa.array(score.astype(np.int32), pa.int32())),
                      ("tier", pa.array(np.array(TIERS, dtype=object)[tier], pa.string())),
                      ("reasons", reasons)):
        f = pa.field(name, arr.type)
        i = out.schema.get_field_index(name)
        out = out.set_column(i, out.schema.field(i), arr) if i >= 0 else out.append_column(f, arr)
    return out


def derive(files: pa.Table, rules: RuleSet, *, now: dt.datetime | None = None, since: dt.datetime | None = None,
           categories: pa.Array | None = None) -> dict[str, pa.Array]:
    """Every column plus the derived fields conditions may test (see default-rules.yaml)."""
    n = files.num_rows
    ctx: dict[str, pa.Array] = {name: _array(files.column(name)) for name in files.schema.names
                                if name not in RANK_COLUMNS}
    ctx["kind"] = _classify(ctx.get("mime", pa.nulls(n, pa.string())), rules.kinds)
    ctx["location"] = _classify(ctx.get("path", pa.nulls(n, pa.string())), rules.locations)
    names = ctx.get("name", pa.nulls(n, pa.string()))
    ext = pc.struct_field(pc.extract_regex(names, r"[^.]\.(?P<e>[^./]{1,16})$"), [0]) if n else names
    ctx["extension"] = pc.utf8_lower(ext)
    newest = _newest(ctx, n)
    ns = newest.to_numpy(zero_copy_only=False).astype("float64") if n else np.zeros(0)
    valid = np.asarray(pc.is_valid(newest).to_numpy(zero_copy_only=False), dtype=bool) if n else np.zeros(0, bool)
    cutoff = _ns(now) if now is not None else None
    usable = valid & (ns <= cutoff) if cutoff is not None else valid
    if "type" in ctx and n:  # a folder's mtime moves whenever a file lands in it: files only set the reference
        usable &= np.asarray(pc.starts_with(ctx["type"], "r").to_numpy(zero_copy_only=False), dtype=bool)
    reference = _ns(since) if since is not None else (ns[usable].max() if usable.any() else None)
    if reference is None:
        ctx["age_days"] = pa.nulls(n, pa.float64())
        ctx["recent"] = pa.array(np.zeros(n, dtype=bool))
    else:
        age = np.round((reference - ns) / _NS_PER_DAY, 1)
        ctx["age_days"] = pa.array(age, pa.float64(), mask=~valid)
        recent = valid & (ns >= reference if since is not None else (age <= rules.recent_days) & (age >= 0))
        ctx["recent"] = pa.array(recent)
    if categories is None:
        categories = pa.nulls(n, pa.int32())
    ctx["vics_category"] = categories
    if "entropy" not in ctx:  # results from before the content pass measured it
        ctx["entropy"] = pa.nulls(n, pa.float64())
    return ctx


def _newest(ctx: dict[str, pa.Array], n: int) -> pa.Array:
    times = [ctx[c].cast(pa.int64()) for c in ("mtime", "crtime") if c in ctx]
    if not times:
        return pa.nulls(n, pa.int64())
    return pc.max_element_wise(*times, skip_nulls=True) if len(times) > 1 else times[0]


def _ns(when: dt.datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _classify(values: pa.Array, groups: dict[str, tuple[str, ...]]) -> pa.Array:
    """The first group whose globs match each value (null when none does)."""
    n = len(values)
    out = np.full(n, None, dtype=object)
    todo = np.ones(n, dtype=bool)
    for name, globs in groups.items():
        hit = match_globs(values, globs) & todo
        out[hit] = name
        todo &= ~hit
    return pa.array(out, pa.string())


def _any(fired: np.ndarray, which: list[bool], n: int) -> np.ndarray:
    sel = np.array(which, dtype=bool)
    return fired[sel].any(axis=0) if sel.any() else np.zeros(n, dtype=bool)


def _reasons(rules: RuleSet, fired: np.ndarray, adjust: np.ndarray, tier: np.ndarray, lo: np.ndarray,
             hi: np.ndarray, ctx: dict[str, pa.Array]) -> pa.Array:
    """list<struct<rule, weight, reason>> per row: the rules that fired in file order, then the band adjustment."""
    n = fired.shape[1]
    rows, which = np.nonzero(np.ascontiguousarray(fired.T))  # row-major: by row, then rule order
    adj_rows = np.flatnonzero(adjust != 0)
    all_rows = np.concatenate([rows, adj_rows])
    all_which = np.concatenate([which, np.full(adj_rows.size, len(rules.rules))])
    order = np.lexsort((all_which, all_rows))
    all_rows, all_which = all_rows[order], all_which[order]
    names = np.array([r.name for r in rules.rules] + [BAND_RULE], dtype=object)
    weights = np.array([r.weight for r in rules.rules] + [0], dtype=np.int64)[all_which]
    is_band = all_which == len(rules.rules)
    weights[is_band] = adjust[all_rows[is_band]]
    text = np.empty(all_rows.size, dtype=object)
    for k, rule in enumerate(rules.rules):
        at = np.flatnonzero(all_which == k)
        if at.size == 0:
            continue
        if not rule.fields:
            text[at] = rule.reason
            continue
        columns = [_values(ctx, f, all_rows[at]) for f in rule.fields]
        seen: dict[tuple, str] = {}  # few distinct values (set names, days): format each once
        out = []
        for key in zip(*columns):
            key = tuple(tuple(v) if isinstance(v, list) else v for v in key)
            if key not in seen:
                seen[key] = _format(rule.reason, dict(zip(rule.fields, key)))
            out.append(seen[key])
        text[at] = out
    band = np.flatnonzero(is_band)
    if band.size:
        r = all_rows[band]
        text[band] = [f"kept within {a}-{b}, the score band of tier {TIERS[t]}"
                      for a, b, t in zip(lo[r].tolist(), hi[r].tolist(), tier[r].tolist())]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(all_rows, minlength=n), out=offsets[1:])
    structs = pa.StructArray.from_arrays(
        [pa.array(names[all_which], pa.string()), pa.array(weights.astype(np.int32), pa.int32()),
         pa.array(text, pa.string())], fields=list(REASON_TYPE))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), structs)


def _values(ctx: dict[str, pa.Array], name: str, rows: np.ndarray) -> list[Any]:
    if name not in ctx:
        return [None] * rows.size
    return ctx[name].take(pa.array(rows, pa.int64())).to_pylist()


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _format(sentence: str, values: dict[str, Any]) -> str:
    shown = _Blank({k: _show(v) for k, v in values.items()})
    try:
        return sentence.format_map(shown)
    except (ValueError, IndexError, KeyError, AttributeError):
        return sentence


def _show(v: Any) -> str:
    if v is None:
        return "?"
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".") if v == v else "?"
    if isinstance(v, (list, tuple)):
        return ", ".join(_show(x) for x in v) or "none"
    return str(v)


def _array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def order(table: pa.Table) -> np.ndarray:
    """Row indices, highest score first; ties in file-table order (partition, path, inode...),
    which the merge already sorted by, so the order is deterministic."""
    score = np.asarray(table.column("score").to_numpy(zero_copy_only=False), dtype=np.int64)
    return np.lexsort((np.arange(table.num_rows), -score))


def tier_counts(table: pa.Table) -> dict[str, int]:
    values = table.column("tier").to_pylist()
    return {t: values.count(t) for t in TIERS}


def reasons_text(reasons: Sequence[dict[str, Any]] | None) -> str:
    """``rule +w: sentence; ...`` — how the CLI and the CSV show one row's arithmetic."""
    return "; ".join(f"{r['rule']} {r['weight']:+d}: {r['reason']}" for r in reasons or [])
