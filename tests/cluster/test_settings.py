"""The cluster settings an operator types: worker ranges, TLS files, the back-off of a lost scheduler."""

from __future__ import annotations

import itertools

import pytest

from triage.cluster.connect import parse_workers
from triage.cluster.reconnect import backoff
from triage.cluster.security import make_security
from triage.rules.errors import ClusterError


def test_workers_are_a_number_or_an_adaptive_range():
    assert parse_workers("4") == 4 and parse_workers(3) == 3 and parse_workers(None) is None
    assert parse_workers("1:8") == (1, 8) and parse_workers("0:2") == (0, 2)
    for bad in ("8:1", "x", "1:", "-1:3", "0:0"):
        with pytest.raises(ClusterError, match="MIN:MAX"):
            parse_workers(bad)


def test_tls_is_all_or_nothing_and_names_what_is_missing(tmp_path):
    assert make_security(None, None, None) is None
    with pytest.raises(ClusterError, match=r"triage\.cluster\.tls\.key is not set"):
        make_security(tmp_path / "ca.pem", tmp_path / "c.pem", None)
    with pytest.raises(ClusterError, match=r"ca\.pem: TLS ca-file file not found"):
        make_security(tmp_path / "ca.pem", tmp_path / "c.pem", tmp_path / "k.pem")


def test_back_off_doubles_up_to_thirty_seconds():
    assert list(itertools.islice(backoff(), 7)) == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
