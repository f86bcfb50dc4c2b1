"""Batch hex decoding: exact bytes for good input, a clean 'invalid' for everything else."""

from __future__ import annotations

import numpy as np

from triage.rules.hexcodec import decode_hex, rows_to_hex


def test_round_trip_any_case(samples) -> None:
    values = samples.hashes("sha1", 50)
    mixed = [v.upper() if i % 2 else v for i, v in enumerate(values)]
    rows, valid = decode_hex(mixed, 20)
    assert valid.all()
    assert rows_to_hex(rows) == values
    assert [bytes(r) for r in rows] == [bytes.fromhex(v) for v in values]


def test_invalid_values_are_flagged_not_raised(samples) -> None:
    good = samples.hashes("md5", 1)[0]
    values = [good, None, good[:-1], good + "0", "g" * 32, "é" * 32, 12345, b"x" * 32, good.upper(), " " + good[1:]]
    rows, valid = decode_hex(values, 16)  # type: ignore[arg-type]
    assert valid.tolist() == [True, False, False, False, False, False, False, False, True, False]
    assert bytes(rows[0]) == bytes.fromhex(good) == bytes(rows[8])
    assert not rows[~valid].any()


def test_empty_batch() -> None:
    rows, valid = decode_hex([], 32)
    assert rows.shape == (0, 32) and valid.shape == (0,)
    assert decode_hex(np.array(["00" * 8]), 8)[1].all()
