"""Arbitrary bytes behind each container signature: identify answers with a ref or a one-line TriageError, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.rules.errors import TriageError
from triage.workers.image import identify, iter_media

SIGNATURES = [b"KDMV", b"# Disk DescriptorFile\n", b"COWD", b"conectix", b"vhdxfile", b"QFI\xfb\x00\x00\x00\x02",
              b"QFI\xfb\x00\x00\x00\x03", b"QFI\xfb\x00\x00\x00\x01", b"EVF\x09\x0d\x0a\xff\x00", b""]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sig=st.sampled_from(SIGNATURES), body=st.binary(min_size=0, max_size=8192), tail_sig=st.booleans())
def test_arbitrary_containers_raise_only_triage_errors(sig, body, tail_sig):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "evidence.img"
        data = sig + body
        if tail_sig and sig == b"conectix":  # a fixed VHD keeps its footer at the end only
            data = body + sig + bytes(504)
        p.write_bytes(data or b"\x00")
        try:
            ref = identify(p)
        except TriageError as exc:
            assert "\n" not in str(exc) and str(p) in str(exc)
            return
        total = 0
        try:
            for chunk in iter_media(ref, chunk=4096):
                total += len(chunk)
        except TriageError:
            return
        except (OSError, RuntimeError):  # a stream that breaks after opening: hash_media reports it as the error
            return
        assert total == ref.size
