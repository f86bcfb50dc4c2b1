"""Hash-set file formats: one module per format, registered with @hashset_format."""
