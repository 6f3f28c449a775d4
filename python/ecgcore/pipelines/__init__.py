"""Archive-level jobs: run one per-record task over many records, resumably, in a pool or on Dask."""
from .archive import ArchiveSummary, atomic_write, run_archive

__all__ = ["ArchiveSummary", "atomic_write", "run_archive"]
