"""Checks behind a few settings (kept out of config.py): hosted or local mode and why,
trusted proxy networks, the upload cache clean-up."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from mmdemo.errors import SettingsError

# "private" in trusted_proxies: the addresses a hosting platform's own proxies use
PRIVATE_NETWORKS = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)


def hosted_mode(values: dict[str, Any], env: Mapping[str, str]) -> tuple[bool, str]:
    """Hosted or local, and why: as told, else hosted wherever strangers can reach the app."""
    switch = "pass --local or MMDEMO_HOSTED=false for local mode"
    if "hosted" in values:
        return bool(values["hosted"]), "set by MMDEMO_HOSTED, --hosted or --local"
    if env.get("SPACE_ID"):
        return True, f"on a Hugging Face Space; {switch}"
    if values.get("share"):
        return True, f"a public share link; {switch}"
    host = str(values.get("host") or "127.0.0.1")
    if not _is_loopback(host):
        return True, f"bound to {host}; {switch}"
    return False, f"bound to {host}, this machine only; pass --hosted for hosted mode"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def trusted_networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of a ``trusted_proxies`` value: addresses, CIDR networks, "private"."""
    nets = []
    for item in (part.strip() for part in spec.split(",")):
        if item == "private":
            nets += [ipaddress.ip_network(n) for n in PRIVATE_NETWORKS]
        elif item:
            nets.append(ipaddress.ip_network(item, strict=False))
    return tuple(nets)


def cache_cleanup(text: str) -> tuple[int, int] | None:
    """``"every,age"`` seconds as Gradio's ``delete_cache`` (None for never: "0,0")."""
    text = text.strip()
    try:
        every, age = (int(part) for part in text.split(","))
    except ValueError:
        raise SettingsError(
            f"upload_cache_cleanup {text!r} is not two whole numbers of seconds",
            fix="set MMDEMO_UPLOAD_CACHE_CLEANUP to e.g. 3600,3600 (or 0,0 for never)",
        ) from None
    if every < 0 or age < 0:
        raise SettingsError(
            f"upload_cache_cleanup {text!r} has a negative number",
            fix="set MMDEMO_UPLOAD_CACHE_CLEANUP to e.g. 3600,3600 (or 0,0 for never)",
        )
    return (every, age) if every and age else None
