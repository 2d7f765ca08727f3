"""An image server on a loopback address and a played DNS, for tests of fetched image URLs."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Any

import pytest

from mmdemo.flows import fetch

RED = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"


class ImageServer:
    """A tiny HTTP server on a loopback address: serves RED at /red.png, redirects
    /go?to=URL, and remembers every request (path, Host header)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.hits: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append((self.path, self.headers.get("Host", "")))
                if self.path.startswith("/go?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.removeprefix("/go?to="))
                    self.end_headers()
                elif self.path == "/red.png":
                    data = RED.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    self.send_response(404)
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = host, self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/red.png", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def play_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[list[str]]]) -> list[str]:
    """Replace the resolver: each name answers its lists of addresses in turn (the last one
    again and again), other names resolve as usual; returns the names looked up, in order."""
    asked: list[str] = []
    answers = {name: list(lists) for name, lists in names.items()}
    real = fetch.resolve

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        lists = answers.get(host)
        if lists is None:
            return real(host, port)
        return lists.pop(0) if len(lists) > 1 else lists[0]

    monkeypatch.setattr(fetch, "resolve", resolve)
    return asked
