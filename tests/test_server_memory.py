"""The server gives freed heap memory back to the system (glibc), and its trimmer thread ends
with the app."""

from __future__ import annotations

import platform
import threading

import psutil
import pytest

from mmdemo.heap import trim_free_memory
from mmdemo.serve.memory import FreeMemoryTrimmer

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")


def rss() -> int:
    return psutil.Process().memory_info().rss


@glibc
def test_freed_memory_goes_back_to_the_system() -> None:
    # many small blocks come from malloc's arenas (not mmap), which keep them when freed;
    # every other one stays alive, so the heap's top cannot simply shrink
    blocks = [bytearray(4096) for _ in range(100_000)]  # ~400 MB
    keep = blocks[::64]
    del blocks
    after_free = rss()
    assert trim_free_memory()
    assert rss() < after_free - 100 * 2**20, "the trim gave the free pages back"
    assert keep  # still alive and usable
    keep[0][0] = 1


@glibc
def test_the_trimmer_stops_when_the_app_stops() -> None:
    alive = threading.Event()
    alive.set()
    trimmer = FreeMemoryTrimmer.start(alive.is_set, interval_s=0.01)
    assert trimmer is not None and trimmer.thread.is_alive()
    assert trimmer.trimmed.wait(30), "the trimmer trims while the app runs"
    alive.clear()
    trimmer.thread.join(30)
    assert not trimmer.thread.is_alive()
    done = trimmer.trims
    assert done >= 1 and not trimmer.thread.is_alive() and trimmer.trims == done
