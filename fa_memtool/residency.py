"""Which bytes of a buffer are resident in RAM, read from /proc/self/pagemap (Linux).

``np.zeros`` asks the kernel for zero pages lazily: the bytes are allocated but not
resident until written. Unprivileged processes may read the "present" bit of their
own pagemap entries, which is all this needs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

PAGEMAP = "/proc/self/pagemap"
PRESENT_BIT = 63


def resident_bytes(buffers: Iterable[tuple[int, int]]) -> int | None:
    """Resident bytes of ``(address, length)`` buffers, or None where the OS cannot tell.

    Whole pages are counted, so each buffer's figure is capped at its own length.
    """
    if not sys.platform.startswith("linux") or not os.access(PAGEMAP, os.R_OK):
        return None
    import numpy

    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    try:
        with open(PAGEMAP, "rb", buffering=0) as pagemap:
            for address, length in buffers:
                if length <= 0:
                    continue
                first = address // page
                last = (address + length - 1) // page
                pagemap.seek(first * 8)
                raw = pagemap.read((last - first + 1) * 8)
                entries = numpy.frombuffer(raw, dtype=numpy.uint64)
                present = int(numpy.count_nonzero(entries >> numpy.uint64(PRESENT_BIT)))
                total += min(length, present * page)
    except OSError:
        return None
    return total
