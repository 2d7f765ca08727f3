"""ZeroGPU on Hugging Face Spaces: ``spaces.GPU`` around GPU work, only where ``spaces`` exists.

``spaces`` is installed on Spaces only; elsewhere (and in tests) ``gpu(...)`` returns the
function unchanged, so mmdemo has no hard dependency on it. On a Space that is not ZeroGPU,
``spaces.GPU`` itself does nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# Seconds of GPU each kind of work may hold per call (ZeroGPU's default is 60; a shorter
# duration puts the visitor earlier in the queue, a longer one is needed for long work).
DURATIONS = {
    "chat": 60,  # one answer of up to a few hundred tokens
    "arena": 90,  # base and up to 3 adapters in one batch
    "voice": 60,  # transcribe, answer, speak one turn
    "video": 240,  # shots, transcript, captions and summary of one upload
    "train": 300,  # a short demo training run
}


def gpu(work: str) -> Callable[[F], F]:
    """A decorator giving ``fn`` a ZeroGPU slot sized for ``work`` (a key of DURATIONS)."""
    duration = DURATIONS[work]
    try:
        spaces = importlib.import_module("spaces")
    except ImportError:
        return _identity
    return spaces.GPU(duration=duration)


def _identity(fn: F) -> F:
    return fn
