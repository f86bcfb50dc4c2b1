"""Reading ranking rule files: YAML in, a validated :class:`RuleSet` out, or one line naming the file and line.

A rule file is declarative on purpose: an examiner (or a force's policy) changes
what is looked at first by editing weights and conditions, never code. The
shipped ``default-rules.yaml`` is the base; a user's file (``ranking.yaml`` in the
state directory, or ``--rules FILE``) says ``extends: default`` to add to it (a
rule with a default rule's name replaces that rule; ``weight: 0`` switches it
off) or ``extends: none`` to replace it whole.

Every mapping is loaded with the line it starts on, so a mistake found only when
the rule is checked (an unknown field, a bad operator) is still reported as
``FILE: line N: why``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from triage.rules.errors import RuleFileError

#: the tiers, strongest first (Autopsy's significance model: notable / likely notable / none / known)
TIERS = ("notable", "likely-notable", "unknown", "known-good")
#: fields a condition may test besides the table's own columns (computed by :mod:`triage.rules.ranking`)
DERIVED = ("kind", "location", "recent", "age_days", "extension", "vics_category", "entropy")
#: operators a condition's mapping may use
OPERATORS = ("eq", "ne", "in", "not-in", "min", "max", "glob", "regex", "present")
COMBINATORS = ("any", "all", "not")
DEFAULT_NAME = "default-rules.yaml"
TOP_KEYS = ("version", "extends", "tiers", "recent-days", "kinds", "locations", "rules")
RULE_KEYS = ("name", "when", "weight", "reason", "tier")


class _Line(dict):
    """A mapping that remembers the (1-based) line it starts on."""

    line = 0


class _Loader(yaml.SafeLoader):
    """The loader of every rule file an examiner writes: PyYAML's own parser, whose messages they see."""


class _PackagedLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same constructors over libyaml's parser, for the packaged default only (~7x faster, parsed on
    every run): a file the package ships and a test parses both ways (tests/rules/test_ranking.py)."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Line:
    out = _Line(loader.construct_mapping(node, deep=True))
    out.line = node.start_mark.line + 1
    return out


for _loader in (_Loader, _PackagedLoader):
    _loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


@dataclass(frozen=True)
class Rule:
    name: str
    when: Any                 # the condition as written (validated); compiled by the ranking module
    weight: int
    reason: str               # a sentence; may name row fields in braces, e.g. {hashset_hits}
    tier: str | None          # 'notable' (forces at least notable) or 'known-good' (pins to the bottom)
    source: str               # 'FILE:line', for messages and the report's provenance
    fields: tuple[str, ...] = ()  # row fields the reason sentence uses


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    notable: int                          # score from which a file is notable
    likely: int                           # score from which a file is likely-notable
    recent_days: float                    # 'recent' = within this many days of the device's newest activity
    kinds: dict[str, tuple[str, ...]]     # kind -> MIME globs (first match wins, in order)
    locations: dict[str, tuple[str, ...]]  # location -> path globs (first match wins, in order)
    files: tuple[dict[str, str], ...] = field(default=())  # provenance: path and sha256 of each file read


def default_text() -> str:
    return importlib.resources.files("triage.rules").joinpath(DEFAULT_NAME).read_text(encoding="utf-8")


def load_rules(path: str | Path | None = None, *, state: str | Path | None = None) -> RuleSet:
    """The rules in force: ``path`` if given, else ``<state>/ranking.yaml`` if it exists, else the default."""
    default = parse(default_text(), f"<package>/{DEFAULT_NAME}", packaged=True)
    chosen = Path(path) if path is not None else None
    if chosen is None and state is not None and (Path(state) / "ranking.yaml").is_file():
        chosen = Path(state) / "ranking.yaml"
    if chosen is None:
        return _finish(default, [])
    try:
        text = chosen.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(f"{chosen}: cannot read rule file: {getattr(exc, 'strerror', None) or exc}") from exc
    user = parse(text, str(chosen))
    extends = user.get("extends", "default")
    return _finish(default if extends == "default" else None, [user])


def parse(text: str, name: str, *, packaged: bool = False) -> _Line:
    """Parse and check one rule file's YAML; the result is still the raw document. ``packaged``: the
    default rules shipped with the package (parsed through libyaml where PyYAML has it)."""
    try:
        doc = yaml.load(text, Loader=_PackagedLoader if packaged else _Loader)  # noqa: S506 - SafeLoader subclasses
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise RuleFileError(f"{name}: {where}invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(doc, _Line):
        raise RuleFileError(f"{name}: line 1: a rule file is a mapping with a 'rules' list")
    _keys(doc, TOP_KEYS, name, "rule file")
    if doc.get("extends", "default") not in ("default", "none"):
        raise RuleFileError(f"{name}: line {doc.line}: extends must be 'default' or 'none', not {doc['extends']!r}")
    if not isinstance(doc.get("rules", []), list):
        raise RuleFileError(f"{name}: line {doc.line}: 'rules' must be a list")
    for key in ("kinds", "locations"):
        groups = doc.get(key, {})
        if not isinstance(groups, dict) or not all(_strings(v) for v in groups.values()):
            raise RuleFileError(f"{name}: line {getattr(groups, 'line', doc.line)}: '{key}' maps names to lists "
                                f"of glob patterns")
    doc["__name__"] = name
    doc["__sha256__"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return doc


def _finish(default: _Line | None, users: list[_Line]) -> RuleSet:
    docs = ([default] if default is not None else []) + users
    rules: dict[str, Rule] = {}
    kinds: dict[str, tuple[str, ...]] = {}
    locations: dict[str, tuple[str, ...]] = {}
    tiers = {"notable": 60, "likely-notable": 30}
    recent = 30.0
    for doc in docs:
        name = doc["__name__"]
        for k, v in doc.get("kinds", {}).items():
            kinds[str(k)] = tuple(v)
        for k, v in doc.get("locations", {}).items():
            locations[str(k)] = tuple(v)
        if "tiers" in doc:
            t = doc["tiers"]
            if not isinstance(t, dict) or set(t) - set(tiers) or not all(_int(v) for v in t.values()):
                raise RuleFileError(f"{name}: line {getattr(t, 'line', doc.line)}: 'tiers' takes integer "
                                    f"'notable' and 'likely-notable' thresholds")
            tiers.update(t)
        if "recent-days" in doc:
            if not isinstance(doc["recent-days"], (int, float)) or doc["recent-days"] < 0:
                raise RuleFileError(f"{name}: line {doc.line}: 'recent-days' must be a number of days >= 0")
            recent = float(doc["recent-days"])
        for raw in doc.get("rules", []):
            rule = _rule(raw, name)
            rules.pop(rule.name, None)  # a rule of the same name replaces the earlier one, at the end
            if rule.weight != 0 or rule.tier is not None:
                rules[rule.name] = rule
    if not 0 < tiers["likely-notable"] < tiers["notable"] <= 100:
        raise RuleFileError(f"{docs[-1]['__name__']}: tiers must satisfy 0 < likely-notable < notable <= 100")
    files = tuple({"path": d["__name__"], "sha256": d["__sha256__"], "extends": d.get("extends", "default")}
                  for d in docs)
    return RuleSet(tuple(rules.values()), int(tiers["notable"]), int(tiers["likely-notable"]), recent, kinds,
                   locations, files)


def _rule(raw: Any, name: str) -> Rule:
    if not isinstance(raw, _Line):
        raise RuleFileError(f"{name}: a rule must be a mapping with name, when, weight and reason, not {raw!r}")
    where = f"{name}: line {raw.line}"
    _keys(raw, RULE_KEYS, name, "rule")
    rname = raw.get("name")
    if not isinstance(rname, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", rname):
        raise RuleFileError(f"{where}: a rule needs a 'name' of lower-case letters, digits, '-', '_' or '.'")
    weight = raw.get("weight", 0)
    if not _int(weight) or not -100 <= weight <= 100:
        raise RuleFileError(f"{where}: rule {rname!r}: 'weight' must be an integer from -100 to 100")
    tier = raw.get("tier")
    if tier not in (None, "notable", "known-good"):
        raise RuleFileError(f"{where}: rule {rname!r}: 'tier' may only be 'notable' or 'known-good'")
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise RuleFileError(f"{where}: rule {rname!r}: a rule needs a 'reason' sentence")
    try:
        used = tuple(dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(reason) if f))
    except ValueError as exc:
        raise RuleFileError(f"{where}: rule {rname!r}: reason: {exc}") from None
    if "when" not in raw:
        raise RuleFileError(f"{where}: rule {rname!r}: a rule needs a 'when' condition")
    check_condition(raw["when"], name, rname, raw.line)
    return Rule(rname, raw["when"], int(weight), " ".join(reason.split()), tier, f"{name}:{raw.line}", used)


def check_condition(cond: Any, name: str, rule: str, line: int) -> None:
    """Operators and their arguments; field names are checked against the table when ranking."""
    line = getattr(cond, "line", 0) or line
    at = f"{name}: line {line}: rule {rule!r}"
    if not isinstance(cond, dict) or not cond:
        raise RuleFileError(f"{at}: a condition is a non-empty mapping of field: test")
    for key, test in cond.items():
        if key in ("any", "all"):
            if not isinstance(test, list) or not test:
                raise RuleFileError(f"{at}: '{key}' takes a list of conditions")
            for sub in test:
                check_condition(sub, name, rule, line)
        elif key == "not":
            check_condition(test, name, rule, line)
        elif not isinstance(key, str) or not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise RuleFileError(f"{at}: {key!r} is not a field name")
        elif isinstance(test, dict):
            bad = [op for op in test if op not in OPERATORS]
            if bad:
                raise RuleFileError(f"{at}: unknown operator {bad[0]!r} on {key!r}; known: {', '.join(OPERATORS)}")
            for op in ("glob", "regex"):
                if op in test and not _strings(test[op] if isinstance(test[op], list) else [test[op]]):
                    raise RuleFileError(f"{at}: '{op}' on {key!r} takes a pattern or a list of patterns")
            for pat in ([] if "regex" not in test else test["regex"] if isinstance(test["regex"], list)
                        else [test["regex"]]):
                try:
                    re.compile(pat)
                except re.error as exc:
                    raise RuleFileError(f"{at}: bad regex {pat!r} on {key!r}: {exc}") from None
            for op in ("min", "max"):
                if op in test and (not isinstance(test[op], (int, float)) or isinstance(test[op], bool)):
                    raise RuleFileError(f"{at}: '{op}' on {key!r} takes a number")


def _keys(doc: dict, allowed: tuple[str, ...], name: str, what: str) -> None:
    bad = [k for k in doc if k not in allowed and not str(k).startswith("__")]
    if bad:
        raise RuleFileError(f"{name}: line {getattr(doc, 'line', 1)}: unknown {what} key {bad[0]!r}; "
                            f"known: {', '.join(allowed)}")


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
