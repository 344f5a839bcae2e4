"""Memory the GX worker freed, given back to the system before its next request.

The run's GX worker answers one suite after another for the length of the run. glibc keeps
what Python, pandas and NumPy free on its heap for reuse instead of returning it, and Arrow's
memory pool (mimalloc) keeps what it freed in the same way, so the worker stays near the size
of its largest suite so far, beside the run's own process: at ×1000 of the sample it stayed
at 425 MB, and is at 387 MB once it gives back what it freed. Neither Python nor Dagster
returns it (the gap this module fills); ``malloc_trim`` and the pool's ``release_unused``
do, in milliseconds. Where the C library has no ``malloc_trim`` (not glibc) the heap is left
as it is. The run's own process does not do it between steps: there it freed nothing
measurable (its peak is live frames and DuckDB's buffer), and the pages it gives back are
faulted in again by the next step.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import pyarrow as pa


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


def give_back_freed_memory() -> None:
    """Return the free pages of the C heap (``malloc_trim(0)``) and of Arrow's memory pool
    (the frames' text columns are Arrow buffers) to the system."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    pa.default_memory_pool().release_unused()
