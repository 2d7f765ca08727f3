"""Showing a URL without the secrets it may carry: a login (``https://user:pass@host/v1``,
which httpx and the openai client send as Basic auth) or a key in its query (``?key=...``).

Every place that shows a remote server's URL (labels, error messages, reprs, logs) passes it
through ``redact_url``, or a text that may contain one through ``redact_text``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"  # what stands in for a hidden login or key
# query parameters whose values are credentials (?key=..., ?api_key=..., ?token=..., ?sig=...)
SECRET_QUERY = re.compile(r"key|token|secret|pass|auth|sig|credential", re.IGNORECASE)
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` as it may be shown: a user name and password become ``***@``, secret-looking
    query values ``***``; scheme, host, port and path stay (they say which server it is)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not parseable as a URL: drop anything before an "@"
        return re.sub(r"//[^/@]*@", f"//{HIDDEN}@", url)
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    if parts.username is not None or parts.password is not None:
        netloc = f"{HIDDEN}@{netloc}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        pairs = [(k, HIDDEN if SECRET_QUERY.search(k) else v) for k, v in pairs]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """``text`` (an error message, a log line) with every URL in it redacted."""
    return URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(text))


def url_host(url: str) -> str:
    """Host and port of a URL, never its login (what a column label shows)."""
    shown = redact_url(url)
    try:
        return urlsplit(shown).netloc.rpartition("@")[2] or shown
    except ValueError:
        return shown
