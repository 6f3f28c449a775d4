"""Reading and writing ECG records and annotations (WFDB, .npy, .csv)."""
from .header import Header, read_header
from .record import (
    Annotations,
    Record,
    read_annotations,
    read_record,
    record_paths,
    write_annotations,
)

__all__ = ["Annotations", "Header", "Record", "read_annotations", "read_header", "read_record",
           "record_paths", "write_annotations"]
