"""The process's C heap (glibc malloc): fewer arenas, and freed memory handed back to the
system. The server trims after load peaks (``serve/memory.py``), the video flow after each
block of a long file (``flows/video``). No library offers either call; ctypes reaches libc.
Both are no-ops off glibc (macOS, musl).

glibc keeps memory that was freed inside its arenas for reuse, so after a peak (eight users'
answers at once, an hour of audio transcribed in one-minute blocks) the process stays large
although nothing uses that memory (measured: +90 MB after 20 minutes of video, flat with a
trim after each block). ``malloc_trim(0)`` hands the free pages of every arena back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Any

M_ARENA_MAX = -8  # malloc.h


def _libc() -> Any | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def on_glibc() -> bool:
    """Whether this process's C library is glibc (the calls below do something)."""
    return _libc() is not None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would) before the server's threads
    start. Gradio runs handlers in many worker threads and glibc gives each its own arena,
    which it rarely returns: under 8 concurrent users the server grew 51% in 5 minutes with
    the default and 2% after warm-up with 2 arenas, at the same or better throughput
    (docs/reliability.md). A no-op off glibc or when ``MALLOC_ARENA_MAX`` is set; returns
    whether the cap was applied."""
    libc = _libc()
    if os.environ.get("MALLOC_ARENA_MAX") or libc is None:
        return False
    try:
        return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))
    except AttributeError:
        return False


def trim_free_memory() -> bool:
    """Give the free pages of every malloc arena back to the system; whether any were."""
    libc = _libc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except AttributeError:
        return False
