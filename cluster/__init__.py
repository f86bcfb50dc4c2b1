"""How compute is found: the embedded LocalCluster default or a running ``dask scheduler``."""
