"""The server process's heap: fewer glibc malloc arenas, and freed memory given back to the
system after peaks.

glibc keeps memory that was freed inside its arenas for reuse; after a peak (eight users'
answers at once, a video summary) the process keeps that memory resident although nothing
uses it, which reads as growth in a load test and costs a hosted server its headroom.
``malloc_trim(0)`` hands the free pages of every arena back (``madvise``), so resident memory
follows what is live. No library offers either call; ctypes reaches libc. Both are no-ops off
glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import threading
from collections.abc import Callable
from typing import Any

M_ARENA_MAX = -8  # malloc.h


def _libc() -> Any | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would) before the server's threads
    start. Gradio runs handlers in many worker threads and glibc gives each its own arena,
    which it rarely returns: under 8 concurrent users the server grew 51% in 5 minutes with
    the default and 2% after warm-up with 2 arenas, at the same or better throughput
    (docs/reliability.md). A no-op off glibc or when ``MALLOC_ARENA_MAX`` is set; returns
    whether the cap was applied. (No library offers this; ctypes reaches libc's mallopt.)"""
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


class FreeMemoryTrimmer:
    """A daemon thread that trims the heap every ``interval_s`` seconds while ``alive()`` says
    so (a trim takes milliseconds; other threads' allocations wait at most that long)."""

    def __init__(self, alive: Callable[[], bool], interval_s: float = 20.0) -> None:
        self.alive = alive
        self.interval_s = interval_s
        self.stopped = threading.Event()
        self.trims = 0
        self.trimmed = threading.Event()  # set after each trim
        self.thread = threading.Thread(target=self._run, name="mmdemo-trim", daemon=True)

    @classmethod
    def start(cls, alive: Callable[[], bool], interval_s: float = 20.0) -> FreeMemoryTrimmer | None:
        """Start trimming (None off glibc)."""
        if _libc() is None:
            return None
        trimmer = cls(alive, interval_s)
        trimmer.thread.start()
        return trimmer

    def _run(self) -> None:
        while not self.stopped.wait(self.interval_s) and self.alive():
            trim_free_memory()
            self.trims += 1
            self.trimmed.set()

    def stop(self) -> None:
        self.stopped.set()
