"""Known-item sets, their compiled indexes, perceptual matching and ranking rules. No Dask here."""
