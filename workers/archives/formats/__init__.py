"""Archive readers, one module per format, each registering itself on ``ARCHIVES``."""
