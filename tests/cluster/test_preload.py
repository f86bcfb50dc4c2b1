"""The processes triage owns never import pandas: the CLI's and its own LocalCluster's workers.

pyarrow imports pandas, when installed, on the first array it builds from Python objects (~0.5 CPU s per
process, ~0.9 s of a small run's wall time); triage never uses it (triage.cluster.preload).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest
from triage_test_fixtures.shared import CORPUS

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pandas") is None,
                                reason="pandas is not installed here: nothing would import it anyway")

IMAGE = CORPUS / "dfvfs" / "iso9660.raw"


def test_the_cli_process_triages_without_importing_pandas(tmp_path):
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        from triage.cli.main import main
        rc = main(["run", {str(IMAGE)!r}, "-o", {str(out)!r}, "--workers", "1", "--no-progress"])
        print(rc, "pandas" in sys.modules)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["0", "False"], (r.stdout, r.stderr)
    assert (out / "files.parquet").is_file() and (out / "report.html").is_file()


def test_pandas_stays_importable_elsewhere_and_blocked_as_if_not_installed():
    script = textwrap.dedent("""
        import pyarrow as pa
        from triage.cluster.preload import without_pandas
        without_pandas()
        without_pandas()  # once is enough; twice changes nothing
        try:
            import pandas
        except ModuleNotFoundError as exc:
            print("blocked", exc.name)
        print(pa.array([1, 2]).to_pylist() == [1, 2])
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["blocked", "pandas", "True"], r.stdout
    # a process that imported pandas before keeps it
    r = subprocess.run([sys.executable, "-c", "import pandas; from triage.cluster.preload import without_pandas; "
                        "without_pandas(); import pandas.core.frame; print('kept')"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "kept", r.stderr


def test_local_cluster_workers_build_arrow_tables_without_importing_pandas():
    from triage.cluster.connect import connect

    def arrow_rows() -> int:
        import pyarrow as pa

        return pa.RecordBatch.from_pylist([{"a": 1}, {"a": 2}]).num_rows

    def pandas_imported() -> bool:
        import sys

        return "pandas" in sys.modules

    with connect(workers=1) as client:
        assert client.submit(arrow_rows, pure=False).result() == 2
        assert list(client.run(pandas_imported).values()) == [False]
