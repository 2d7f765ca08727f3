"""Fetch an image URL for ``/v1`` without letting a caller reach this server's own network
(server-side request forgery: loopback, private ranges, link-local, cloud metadata ...).

Each hop resolves the host once, refuses it unless every address is public (or local URLs
are allowed), then connects to that checked address with the URL's name kept in the Host
header and the TLS SNI/certificate check, so DNS rebinding cannot switch the address between
check and connect. Redirects are followed here, each hop checked again, at most
``MAX_REDIRECTS``. Every failure reads the same to the caller (no status, port or error text
echoed back that would map the network); the cause is logged for the operator.

Why not a library: safehttpx (Gradio's) is async-only, accepts a host when any one of its
addresses is public (asking dns.google over the network when none is), reads the whole body
into memory and leaves redirects to the caller; httpx offers the pieces used here publicly
(a transport subclass and the ``sni_hostname`` request extension).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from typing import Any

import httpx

from mmdemo.errors import BadInputError

MAX_REDIRECTS = 3
TIMEOUT_S = 10.0  # for the whole fetch, redirects included
FAILED = "the image URL could not be fetched"
FIX = (
    "use a public http(s) URL that answers with the image, or send the image inline as a "
    "data URL (data:image/png;base64,...); addresses on this machine or a private network "
    "are fetched only where the server sets MMDEMO_ALLOW_LOCAL_URLS=true"
)
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
log = logging.getLogger("mmdemo.fetch")


class _Refused(Exception):
    """Why a fetch failed (logged, never shown to the caller)."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this to play DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    """Whether an address is on the public internet: not loopback, private, link-local
    (169.254.169.254), unique-local (fd00:ec2::254), shared, multicast or reserved, also
    when an IPv4 address hides inside IPv6 (mapped, 6to4, Teredo, NAT64)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and any(ip in net for net in NAT64):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None and not is_public(str(inner)):
            return False
    return ip.is_global and not ip.is_multicast


class _PinnedTransport(httpx.HTTPTransport):
    """Connects to one checked address whatever DNS says later; the request keeps its name
    for the Host header and for TLS (SNI and the certificate check)."""

    def __init__(self, address: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        name = request.url.host
        request.url = request.url.copy_with(host=self.address)
        request.extensions = {**request.extensions, "sni_hostname": name}
        return super().handle_request(request)


def fetch_image(url: str, limit: int, allow_local: bool = False) -> bytes:
    """The body of ``url`` (at most ``limit`` bytes), fetched only from allowed addresses."""
    try:
        return _fetch(url, limit, allow_local)
    except BadInputError:
        raise
    except Exception as exc:  # one answer for every failure: nothing to map a network with
        log.info("image URL not fetched (%s): %s", type(exc).__name__, exc)
        raise BadInputError(FAILED, fix=FIX) from None


def _fetch(url: str, limit: int, allow_local: bool) -> bytes:
    deadline = time.monotonic() + TIMEOUT_S
    target = httpx.URL(url)
    for _ in range(MAX_REDIRECTS + 1):
        address = _checked_address(target, allow_local)
        left = max(0.1, deadline - time.monotonic())
        transport = _PinnedTransport(address)
        with (
            httpx.Client(transport=transport, trust_env=False, timeout=left) as client,
            client.stream("GET", target) as reply,
        ):
            if reply.is_redirect:
                location = reply.headers.get("location", "")
                if not location:
                    raise _Refused(f"redirect {reply.status_code} without a Location")
                target = target.join(location)
                continue
            if reply.status_code != 200:
                raise _Refused(f"HTTP {reply.status_code}")
            return _read(reply, limit, deadline)
    raise _Refused(f"more than {MAX_REDIRECTS} redirects")


def _checked_address(target: httpx.URL, allow_local: bool) -> str:
    """The address to connect to for ``target``, after checking all it resolves to."""
    if target.scheme not in ("http", "https") or not target.host:
        raise _Refused(f"not an http(s) URL with a host: {target.scheme}")
    port = target.port or (443 if target.scheme == "https" else 80)
    host = target.raw_host.decode("ascii").strip("[]")
    addresses = resolve(host, port)
    if not addresses:
        raise _Refused(f"{host} resolves to no address")
    refused = [a for a in addresses if not is_public(a)]
    if refused and not allow_local:
        raise _Refused(f"{host} resolves to a local or private address ({refused[0]})")
    return addresses[0]


def _read(reply: httpx.Response, limit: int, deadline: float) -> bytes:
    declared = reply.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadInputError(f"the image at the URL is over {_size(limit)}", fix=SMALLER)
    chunks, size = [], 0
    for chunk in reply.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise BadInputError(f"the image at the URL is over {_size(limit)}", fix=SMALLER)
        if time.monotonic() > deadline:
            raise _Refused(f"slower than {TIMEOUT_S:.0f} s")
        chunks.append(chunk)
    return b"".join(chunks)


SMALLER = "send a smaller image"


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n} bytes"
