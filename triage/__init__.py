"""evidence-triage: the control plane package. Kept import-free: every Dask worker imports it."""

__version__ = "0.1.0"
