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


def test_queue_ageing_comes_from_the_config(tmp_path):
    import dask.config

    from triage.queue import Queue

    assert Queue(tmp_path / "q.sqlite").age_every == 1800.0
    with dask.config.set({"triage.queue.age-every": 60}):
        assert Queue(tmp_path / "q.sqlite").age_every == 60.0


def test_the_yaml_is_read_once(monkeypatch):
    """config.get asks dask.config only; the file is parsed at the first call of the process."""
    config.get("content.chunk-bytes")
    reads = []
    monkeypatch.setattr(config.yaml, "safe_load", lambda *a: reads.append(a) or {})
    for _ in range(100):
        config.get("content.batch-bytes")
    assert reads == []


def test_defaults_survive_a_config_context_entered_first():
    """dask.config.set removes on exit the keys it found absent: the defaults come back."""
    import dask.config

    dask.config.config.pop("triage", None)
    with dask.config.set({"triage.carve.overlap": 1}):
        assert config.get_bytes("carve.overlap") == 1
    assert config.get("carve.mode") == "unalloc"


def test_the_defaults_read_the_same_through_libyaml_as_through_pyyaml():
    text = (HERE / "triage.yaml").read_text()
    assert config._defaults() == yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - the reference parser
