"""What a hosted server allows: per-session rate limits and the hosted-mode refusals.

The token bucket is a dozen lines, so it is written here rather than pulling in a
rate-limiting package built for web frameworks (slowapi, limits) that would not see Gradio's
session hashes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from mmdemo.config import Settings
from mmdemo.errors import NotAllowedError, RateLimitedError
from mmdemo.errors import require_local as require_local  # re-exported for the flows

MAX_KEYS = 10_000  # buckets kept; the fullest (idle) ones are dropped first beyond this


class RateLimiter:
    """A token bucket per key (a Gradio session hash or an API client): ``per_minute``
    requests a minute on average, bursts up to ``burst``."""

    def __init__(
        self,
        per_minute: int,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst or max(1, min(per_minute, 5))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, key: str) -> None:
        """Spend one request of ``key``'s budget, or raise RateLimitedError naming the wait."""
        if not self.enabled:
            return
        rate = self.per_minute / 60.0
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / rate)
                raise RateLimitedError(
                    f"too many requests, wait {wait} s",
                    retry_after=wait,
                    fix=f"this server allows {self.per_minute} requests a minute per session",
                )
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_KEYS:
                self._forget_idle()

    def _forget_idle(self) -> None:
        fullest = sorted(self._buckets, key=lambda k: self._buckets[k][0], reverse=True)
        for key in fullest[: len(self._buckets) - MAX_KEYS]:
            del self._buckets[key]


def require_training(settings: Settings) -> None:
    """Refuse training where the operator has not allowed it."""
    if not settings.allow_training:
        raise NotAllowedError(
            "training is turned off on this server",
            fix="ask its operator to set MMDEMO_ALLOW_TRAINING=true, or run mmdemo locally",
        )
