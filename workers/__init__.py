"""Data plane: pure task functions that run on Dask workers.

Tasks take small frozen descriptions (``triage.workers.refs``) and return Arrow
record batches or small dataclasses. Open handles are cached per worker process
(``triage.workers.image``); content never travels through the scheduler.
"""
