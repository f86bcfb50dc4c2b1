"""triage.yaml and triage-schema.yaml describe the same keys, and the defaults are usable."""

from pathlib import Path

import yaml

import triage
from triage import config

HERE = Path(triage.__file__).parent


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and not ({"type", "description"} <= set(v)):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_schema_describes_every_key_and_nothing_else():
    defaults = _leaves(yaml.safe_load((HERE / "triage.yaml").read_text()))
    schema = _leaves(yaml.safe_load((HERE / "triage-schema.yaml").read_text()))
    assert set(defaults) == set(schema)
    for key, spec in schema.items():
        assert spec["description"].strip(), key


def test_defaults_are_registered_with_dask_config():
    assert config.get_bytes("content.chunk-bytes") == 4 << 20
    assert config.get_bytes("content.batch-bytes") == 64 << 20
    assert config.get("cluster.scheduler") is None


def test_environment_overrides(monkeypatch):
    import dask.config

    with dask.config.set({"triage.content.batch-files": 7}):
        assert config.get("content.batch-files") == 7
