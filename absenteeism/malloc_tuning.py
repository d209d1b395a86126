"""glibc's malloc hands freed memory back to the kernel at once: a freed block larger than its mmap
threshold is unmapped, and a heap's free top beyond its trim threshold is given back. A batch call
(or a job's chunk) allocates and frees megabytes of arrays and messages, so the next one faults
every page in again (zeroed by the kernel): on 10,000-row PredictColumns calls that was more than
half the server's CPU, and a tenth to a quarter of the job's system CPU on 1M rows. The server (at boot) and
the job (before its first chunk) raise both thresholds once, so memory freed by one call or chunk
serves the next; the process keeps up to that much more memory per malloc arena. Elsewhere than
glibc it does nothing.
"""

from __future__ import annotations

import ctypes

DEFAULT_KEEP_MIB = 32  # --malloc-keep-mib of the server and of the job
MAX_KEEP_MIB = 1024

# mallopt's parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_memory(mib: int) -> bool:
    """Raises glibc's trim and mmap thresholds to `mib` MiB (0: leaves glibc's defaults); True when
    glibc took both."""
    if mib <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):  # not glibc (macOS has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    kept = mib << 20
    return bool(mallopt(M_MMAP_THRESHOLD, kept)) and bool(mallopt(M_TRIM_THRESHOLD, kept))
