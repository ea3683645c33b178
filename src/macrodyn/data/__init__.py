"""Dataset store: chunked zarr tables of configurations and the forces computed."""
from macrodyn.data.store import ChunkedTable, Problem

__all__ = ["ChunkedTable", "Problem"]
