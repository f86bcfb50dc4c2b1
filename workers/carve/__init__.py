"""Carvers: one module per object type, registered with @carver."""
