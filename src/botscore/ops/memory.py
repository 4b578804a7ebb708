"""Keeping the resident set small: glibc malloc settings and returning freed memory.

The shipper handles segment-sized buffers (compressed segments, boto3 request bodies). glibc
raises its mmap threshold after such a buffer is freed, so later ones land on the heap and
stay resident; a fixed threshold keeps big buffers in their own mappings, returned on free
(the same as MALLOC_MMAP_THRESHOLD_=131072, set from inside so every way of starting the
service gets it). Elsewhere than glibc both functions do nothing.
"""

from __future__ import annotations

import ctypes
import gc

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 128 * 1024


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def tune_malloc() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _THRESHOLD)


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS."""
    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
