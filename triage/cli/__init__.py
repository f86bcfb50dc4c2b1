"""The ``triage`` command: one module per verb."""
