"""What a hosted server allows: request budgets per client and for the whole server, who the
client of a web request is, and the hosted-mode refusals.

The token bucket is a dozen lines, so it is written here rather than pulling in a
rate-limiting package built for web frameworks (slowapi, limits) that would see neither
Gradio's queue nor the Space proxy's forwarded addresses.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from mmdemo.config import Settings
from mmdemo.config_checks import trusted_networks
from mmdemo.errors import NotAllowedError, RateLimitedError
from mmdemo.errors import require_local as require_local  # re-exported for the flows

MAX_KEYS = 10_000  # buckets kept; the fullest (idle) ones are dropped first beyond this
EPSILON = 1e-9  # stream chunks spend fractions; their float sums must not fall short
ALL = "*all clients*"  # the key of the server-wide bucket (no client address looks like it)


class RateLimiter:
    """Token buckets: one per key (a client) with ``per_minute`` requests a minute on average
    and bursts up to ``burst``, and one for all keys together with ``total_per_minute``
    (bursts up to half a minute's worth). 0 turns a limit off."""

    def __init__(
        self,
        per_minute: int,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        total_per_minute: int = 0,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst or max(1, min(per_minute, 5))
        self.total_per_minute = total_per_minute
        self.total_burst = max(1, total_per_minute // 2)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 or self.total_per_minute > 0

    def take(self, key: str, cost: float = 1.0) -> None:
        """Spend ``cost`` requests of ``key``'s budget and of the server's, or raise
        RateLimitedError naming the wait (nothing is spent then)."""
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
            spend: list[tuple[str, float]] = []
            if self.per_minute > 0:
                tokens = self._refill(key, self.per_minute, self.burst, now)
                if tokens < cost - EPSILON:
                    self._buckets[key] = (tokens, now)
                    wait = _wait(tokens, cost, self.per_minute)
                    raise RateLimitedError(
                        f"too many requests, wait {wait} s",
                        retry_after=wait,
                        fix=f"this server allows {self.per_minute} requests a minute per client",
                    )
                spend.append((key, tokens))
            if self.total_per_minute > 0:
                tokens = self._refill(ALL, self.total_per_minute, self.total_burst, now)
                if tokens < cost - EPSILON:
                    self._buckets[ALL] = (tokens, now)
                    wait = _wait(tokens, cost, self.total_per_minute)
                    raise RateLimitedError(
                        f"the server is busy: too many requests from all visitors, wait {wait} s",
                        retry_after=wait,
                        fix=f"this server takes {self.total_per_minute} heavy requests a minute "
                        "in all; try again shortly, or run mmdemo on your own machine",
                    )
                spend.append((ALL, tokens))
            for name, tokens in spend:
                self._buckets[name] = (max(0.0, tokens - cost), now)
            if len(self._buckets) > MAX_KEYS:
                self._forget_idle()

    def _refill(self, key: str, per_minute: int, burst: int, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(burst), now))
        return min(float(burst), tokens + (now - last) * per_minute / 60.0)

    def _forget_idle(self) -> None:
        fullest = sorted(self._buckets, key=lambda k: self._buckets[k][0], reverse=True)
        extra = len(self._buckets) - MAX_KEYS
        for key in [k for k in fullest if k != ALL][:extra]:
            del self._buckets[key]


def _wait(tokens: float, cost: float, per_minute: int) -> int:
    return max(1, math.ceil((cost - tokens) / (per_minute / 60.0)))


# who the client is ------------------------------------------------------------------------
def client_address(peer: str | None, forwarded_for: str, trusted_proxies: str) -> str:
    """The client of a request that came from ``peer`` (the TCP peer) with an
    ``X-Forwarded-For`` of ``forwarded_for``.

    The header is believed only when the peer is a trusted proxy; then the client is the
    right-most forwarded address that is not itself a trusted proxy (each proxy appends the
    address it saw, so what a client wrote itself stays on the left and is never reached).
    """
    peer = peer or "unknown"
    nets = trusted_networks(trusted_proxies) if trusted_proxies else ()
    if not nets or not _within(peer, nets):
        return _plain(peer)
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, nets):
            return _plain(hop)
    return _plain(hops[0]) if hops else _plain(peer)


def client_key(request: Any, settings: Settings) -> str:
    """The budget key of a web request (a Starlette/FastAPI or Gradio request): its client's
    address, an IPv6 client by its /64 (one subscriber's block). The one rule the Gradio
    events and ``/v1`` share."""
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    getlist = getattr(headers, "getlist", None)
    forwarded = getlist("x-forwarded-for") if getlist else [headers.get("x-forwarded-for") or ""]
    address = client_address(
        getattr(client, "host", None), ",".join(forwarded), settings.trusted_proxies
    )
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return f"client:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"client:{address}"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in ``text`` ("1.2.3.4", "1.2.3.4:80", "[::1]:80", "::ffff:1.2.3.4")."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _plain(text: str) -> str:
    ip = _ip(text)
    return str(ip) if ip is not None else text[:64]


def _within(address: str, nets: tuple[Any, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in net for net in nets)


# hosted-mode refusals ---------------------------------------------------------------------
def require_training(settings: Settings) -> None:
    """Refuse training where the operator has not allowed it."""
    if not settings.allow_training:
        raise NotAllowedError(
            "training is turned off on this server",
            fix="ask its operator to set MMDEMO_ALLOW_TRAINING=true, or run mmdemo locally",
        )


def require_shared_additions(settings: Any, what: str) -> None:
    """Refuse adding to what every visitor of a hosted server shares (a new taught gesture, an
    uploaded adapter) unless its operator allows training, which adds to it too."""
    if settings.hosted and not settings.allow_training:
        raise NotAllowedError(
            f"{what} is turned off on this hosted server (every visitor would share it)",
            fix="its operator can allow it with MMDEMO_ALLOW_TRAINING=true; or run mmdemo "
            "on your own machine",
        )
