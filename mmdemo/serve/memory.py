"""The server process's heap: freed memory given back to the system after peaks, by a
thread that trims every few seconds (the calls themselves are in ``mmdemo/heap.py``).

After a peak (eight users' answers at once, a video summary) the process keeps freed memory
resident although nothing uses it, which reads as growth in a load test and costs a hosted
server its headroom; trimming makes resident memory follow what is live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from mmdemo.heap import on_glibc, trim_free_memory


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
        if not on_glibc():
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
