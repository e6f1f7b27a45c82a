"""Process-wide memory settings for the numpy-heavy generators and fits (outputs are unaffected)."""

from __future__ import annotations

import functools

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED_BYTES = 1 << 30


@functools.cache
def tune_generator_memory(keep_freed: bool = False) -> None:
    """Make big temporaries cheap in a generator or fitting process (once per process; outputs are unaffected).

    numpy asks the kernel for transparent huge pages on every array of 4 MB or more; with the kernel's
    ``defrag=madvise`` setting each such first touch may stall in direct compaction, which cost a fresh
    process 1-4 s of system CPU per 5M-row tap chunk on a busy machine (user CPU 0.45 s). That request is
    turned off here. With ``keep_freed`` (worker processes, which only generate) glibc also keeps freed
    blocks of up to 1 GB in the heap instead of returning them to the kernel, so the next chunk reuses
    pages already faulted in (0 page faults instead of ~10,000 per chunk); peak memory is unchanged, the
    process just holds it until it exits. The twin's fit makes the same kind of temporaries (arrays of
    the export's ~10M events): on the 11.4M-event HogFlix export its estimators took 21 s of user and
    31-35 s of system CPU (45-49 s wall) on a quiet machine, and 21 s and 8 s (21 s wall) with the
    huge pages off.
    """
    import ctypes

    import numpy as np

    madvise = getattr(getattr(getattr(np, "_core", None), "multiarray", None), "_set_madvise_hugepage", None)
    if madvise is not None:
        madvise(False)
    if keep_freed:
        try:
            libc = ctypes.CDLL(None)  # the C library already loaded in this process
            libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_FREED_BYTES)
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_FREED_BYTES)
        except (OSError, AttributeError):  # not glibc: keep the allocator's defaults
            pass
