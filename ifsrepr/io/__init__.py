"""Reading survey files: the `read` dispatcher and the built-in reader plugins."""

from .read import identify_readers, read, read_primary_header

__all__ = ["identify_readers", "read", "read_primary_header"]
