"""The queue-status dashboard: the backlog, the jobs and the cluster, live, in a browser.

``triage dashboard`` (or ``triage serve --dashboard``) serves it; see ``server`` (start-up,
bind and token), ``app`` (routes), ``reads`` (read-only queue SQL), ``results`` (a job's
results folder), ``cluster`` (scheduler and workers), ``history`` (charts), ``security``.
Changes go through :mod:`triage.actions`, the same path as the CLI verbs.
"""
