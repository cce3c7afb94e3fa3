"""Keep freed CPU memory in the process while training (Linux with glibc).

glibc's malloc serves every block over 32 MiB with its own mmap and unmaps it
on free, so each training step gets its activations in fresh pages and the
kernel faults and zeroes them again: 350,000-530,000 page faults per
ResNet-18 step at batch 256 and 96x96. Serving big blocks from the heap and
never trimming it lets a step reuse the pages of the step before: three such
steps ran 1.14x faster on two cores (`python -m benchmarks.run cputrain`).
PyTorch's CPU tuning guide gets the same from jemalloc or tcmalloc; this
needs no library.

The cost is memory: the process keeps its peak heap (1.5x the resident
memory in that benchmark) until `kept` exits, which restores glibc's
defaults and trims the heap.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, <malloc.h>
DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD = 65536, 128 * 1024
NEVER_TRIM = 2**31 - 1  # mallopt takes an int


def glibc():
    """The C library if it is glibc (which has mallopt and malloc_trim), else None."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


@contextlib.contextmanager
def kept(enabled: bool = True):
    """Within the block, freed memory stays in the process; yields whether that is in effect."""
    libc = glibc() if enabled else None
    ok = libc is not None and libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
    try:
        yield ok
    finally:
        if libc is not None:
            libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
            libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
