"""Dataset store: chunked zarr tables of configurations and the forces computed."""
from macrodyn.data.store import ChunkedTable

__all__ = ["ChunkedTable"]
