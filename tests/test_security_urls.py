"""Image URLs that would reach this server's own network (SSRF): private and link-local
addresses, names that resolve to them (also on a later lookup: DNS rebinding), redirects, and
failures that must all read the same. The image servers are tiny HTTP servers on 127.0.0.1/.2
started here; DNS is played by replacing ``fetch.resolve``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from mmdemo.errors import BadInputError, NotAllowedError
from mmdemo.flows import fetch
from mmdemo.flows.completions import image_bytes
from tests.url_helpers import RED, ImageServer, play_dns

GENERIC = "the image URL could not be fetched"


@pytest.fixture
def internal() -> Iterator[ImageServer]:
    """A server standing for this machine's private network (127.0.0.1)."""
    server = ImageServer("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def public(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImageServer]:
    """A server standing for the public internet: 127.0.0.2 counts as public here."""
    server = ImageServer("127.0.0.2")
    real = fetch.is_public
    monkeypatch.setattr(fetch, "is_public", lambda a: a == "127.0.0.2" or real(a))
    yield server
    server.close()


# -- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # AWS / GCP / Azure metadata
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("100.100.100.200", False),  # Alibaba metadata (shared address space)
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:a9fe:a9fe::1", False),  # 6to4 of 169.254.169.254
        ("fe80::1%eth0", False),
        ("not an address", False),
    ],
)
def test_only_public_addresses_count_as_public(address: str, public: bool) -> None:
    assert fetch.is_public(address) is public


# -- image URLs ----------------------------------------------------------------------------------


def test_local_urls_are_refused_in_both_modes_unless_the_setting_allows_them(
    internal: ImageServer,
) -> None:
    url = internal.url()
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(BadInputError) as refused:
            image_bytes(internal.url(host=host), hosted=False, max_bytes=2**20)
        assert refused.value.message == GENERIC and "MMDEMO_ALLOW_LOCAL_URLS" in refused.value.fix
    with pytest.raises(NotAllowedError, match="data URL"):  # hosted: no URL is fetched at all
        image_bytes(url, hosted=True, max_bytes=2**20, allow_local=True)
    assert internal.hits == []  # never contacted
    assert image_bytes(url, hosted=False, max_bytes=2**20, allow_local=True) == RED.read_bytes()
    with pytest.raises(BadInputError, match="is over"):  # fetched no further than the limit
        image_bytes(url, hosted=False, max_bytes=RED.stat().st_size - 1, allow_local=True)


def test_a_name_is_refused_when_any_of_its_addresses_is_private(
    monkeypatch: pytest.MonkeyPatch, public: ImageServer
) -> None:
    calls: list[str] = []
    real = httpx.HTTPTransport.handle_request
    monkeypatch.setattr(
        httpx.HTTPTransport,
        "handle_request",
        lambda self, request: calls.append(str(request.url)) or real(self, request),
    )
    play_dns(
        monkeypatch,
        {
            "metadata.example": [["169.254.169.254"]],
            "mixed.example": [["127.0.0.2", "10.0.0.7"]],
            "v6.example": [["fd00:ec2::254"]],
        },
    )
    for name in ("metadata.example", "mixed.example", "v6.example"):
        with pytest.raises(BadInputError) as refused:
            fetch.fetch_image(public.url(host=name), 2**20)
        assert refused.value.message == GENERIC
    assert calls == [] and public.hits == []  # no connection was even tried


def test_the_checked_address_is_the_one_connected_to_whatever_dns_says_next(
    monkeypatch: pytest.MonkeyPatch, public: ImageServer
) -> None:
    # DNS rebinding: the first answer is public, every later one private (where nothing
    # listens on that port, so a second look-up would fail the fetch)
    asked = play_dns(monkeypatch, {"rebind.example": [["127.0.0.2"], ["127.0.0.1"]]})
    url = f"http://rebind.example:{public.port}/red.png"
    assert fetch.fetch_image(url, 2**20) == RED.read_bytes()
    assert public.hits == [("/red.png", f"rebind.example:{public.port}")]  # name kept in Host
    assert asked == ["rebind.example"]


def test_redirects_are_checked_hop_by_hop_and_capped(
    monkeypatch: pytest.MonkeyPatch, public: ImageServer, internal: ImageServer
) -> None:
    inside = internal.url()
    with pytest.raises(BadInputError) as refused:
        fetch.fetch_image(public.url(f"/go?to={inside}"), 2**20)
    assert refused.value.message == GENERIC
    assert [p for p, _ in public.hits] == [f"/go?to={inside}"] and internal.hits == []
    # a name that redirects to the metadata address
    play_dns(monkeypatch, {"meta.example": [["169.254.169.254"]]})
    with pytest.raises(BadInputError, match=GENERIC):
        fetch.fetch_image(public.url("/go?to=http://meta.example/latest/meta-data/"), 2**20)
    # with local URLs allowed the same redirect is followed; a long chain is cut off
    assert fetch.fetch_image(public.url(f"/go?to={inside}"), 2**20, allow_local=True)
    loop = public.url("/go?to=/go?to=/go?to=/go?to=/go?to=/red.png")
    with pytest.raises(BadInputError, match=GENERIC):
        fetch.fetch_image(loop, 2**20, allow_local=True)
    assert fetch.fetch_image(public.url("/go?to=/go?to=/red.png"), 2**20) == RED.read_bytes()


def test_fetch_failures_all_read_the_same_so_ports_cannot_be_mapped(
    internal: ImageServer,
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
    urls = [
        internal.url("/missing.png"),  # 404
        f"http://127.0.0.1:{closed.getsockname()[1]}/x.png",  # nothing listens
        "http://no-such-host.invalid/x.png",  # no DNS answer
        internal.url("/go?to=ftp://127.0.0.1/x"),  # redirect to another scheme
    ]
    messages = set()
    for url in urls:
        with pytest.raises(BadInputError) as failed:
            fetch.fetch_image(url, 2**20, allow_local=True)
        messages.add(str(failed.value))
    closed.close()
    assert len(messages) == 1 and GENERIC in messages.pop()
