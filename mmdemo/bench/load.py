"""Load test: N concurrent gradio_client users against a tiny-profile app on localhost.

The server runs in its own process (its memory is measured from outside); each user is a
thread with its own ``Client`` (its own gradio session) that mixes every tab's endpoints
until the time is up. Every answer is checked against the answer the same request got when
asked alone before the load started, and voice turns against the user's own turn count, so
a user who saw another user's conversation or adapter is counted as a cross-user answer.

    python -m mmdemo bench load --users 8 --seconds 120 [--write]

Bounded: at most 32 users and 600 seconds; the server listens on 127.0.0.1 only.
"""

from __future__ import annotations

import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mmdemo.bench.load_users import ADAPTERS, IMAGES, PROBE, Tally, User, _media
from mmdemo.bench.report import Table, write_section

REPO = Path(__file__).resolve().parents[2]
RELIABILITY = REPO / "docs" / "reliability.md"
MAX_USERS, MAX_SECONDS = 32, 600
IDLE_S = 25.0  # longer than the server's heap-trim interval (mmdemo/serve/memory.py)
SERVER = """
import sys, time
from mmdemo.config import Settings
from mmdemo.ui.app import launch
settings = Settings.load(profile="tiny", device="cpu", host="127.0.0.1",
                         port=int(sys.argv[1]), concurrency=2)
launch(settings, prevent_thread_lock=True, quiet=True)
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_home(home: Path, users: int) -> tuple[str, ...]:
    """Tiny models (built once in the user's cache) and one adapter per user, random LoRAs
    scaled (alpha/r = 16) so that each answers its own way; their names."""
    from mmdemo.config import Settings
    from mmdemo.finetune.random_adapter import random_adapter
    from mmdemo.models.adapters import write_metadata
    from mmdemo.models.manager import ModelManager
    from mmdemo.models.tiny import build_all

    shared = Settings.load(profile="tiny", device="cpu")
    build_all(shared.models_dir)
    (home / "models").mkdir(parents=True, exist_ok=True)
    link = home / "models" / "tiny"
    if not link.exists():
        link.symlink_to(shared.models_dir / "tiny")
    settings = shared.replace(home=home)
    manager = ModelManager(settings)
    names = tuple(f"user-{i}" for i in range(users))
    try:
        bundle = manager.get("vlm")
        for i, name in enumerate(names):
            out = settings.home / "adapters" / name
            random_adapter(bundle.model, out, seed=100 + i, rank=8, alpha=128)
            write_metadata(
                out,
                {"base_model": manager.model_id("vlm"), "base_model_type": bundle.family,
                 "method": "lora", "dataset": "random"},
            )  # fmt: skip
    finally:
        manager.unload_all()
    return names


def _start_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEMO_")}
    env.update(MMDEMO_HOME=str(home), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    # the app prints its start-up lines (hosted mode or not) before the script's "ready"
    for line in proc.stdout:
        if line.strip() == "ready":
            break
    else:
        proc.kill()
        raise RuntimeError(f"the app did not start (exit {proc.poll()})")
    return proc, f"http://127.0.0.1:{port}/"


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def exercise(
    url: str,
    server_pid: int,
    users: int,
    seconds: float,
    media: dict[str, Path],
    run_id: str = "",
    adapters: tuple[str, ...] = ADAPTERS,
    idle_s: float = IDLE_S,
    rounds: int = 1,
) -> dict[str, Any]:
    """Solo answers first (one user at a time), then every user at once until ``seconds``
    are up, in ``rounds`` equal rounds with an idle pause after each; returns the figures.
    The app at ``url`` needs a CLIP index called "load"."""
    people = [User(i, url, media, run_id, adapters) for i in range(users)]
    for person in people:  # solo answers, one user at a time (also loads every model)
        person.solo()
    # the same question through each user's adapter: a crossed adapter is only seen where
    # these differ
    distinct = len({str(p.expected.get(f"chat:{PROBE}")) for p in people})
    time.sleep(idle_s)  # idle: the server's heap trimmer runs before the first sample
    idle = [_rss(server_pid)]  # idle before the load and after each round
    tally = Tally()
    started = time.perf_counter()
    rss: list[tuple[float, int]] = []
    busy = 0.0
    for _ in range(rounds):
        round_start = time.perf_counter()
        deadline = time.monotonic() + seconds / rounds
        threads = [
            threading.Thread(target=p.run, args=(deadline, tally), daemon=True) for p in people
        ]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):  # the server's memory, once a second
            rss.append((busy + time.perf_counter() - round_start, _rss(server_pid)))
            time.sleep(1.0)
        for t in threads:
            t.join(600)
        busy += time.perf_counter() - round_start
        rss.append((busy, _rss(server_pid)))
        time.sleep(idle_s)
        idle.append(_rss(server_pid))
    total = sum(len(v) for v in tally.latencies.values())
    return {
        "users": users,
        "seconds": round(busy, 1),
        "rounds": rounds,
        "wall": round(time.perf_counter() - started, 1),
        "requests": total,
        "requests_per_s": total / busy,
        "errors": tally.errors,
        "crossed": tally.crossed,
        # the server's memory at the start and after each quarter of the busy time
        "rss": [next(v for t, v in rss if t >= busy * q / 4) for q in range(5)],
        "rss_peak": max(v for _, v in rss),
        "rss_idle": idle,
        "distinct_answers": distinct,
        # every summary under load was of a video nobody had sent: each ran the whole pipeline
        "video_runs": sum(len(p.summaries) for p in people),
        "video_distinct": len({v for p in people for v in p.summaries}),
        "endpoints": {
            name: {"count": len(v), "p50": statistics.median(v), "p95": percentile(v, 0.95)}
            for name, v in sorted(tally.latencies.items())
        },
    }


def add_index(url: str) -> None:
    """The CLIP index users search: the sample photos."""
    from gradio_client import Client, handle_file

    images = [handle_file(str(p)) for p in sorted(IMAGES.glob("*.jpg"))]
    Client(url, verbose=False).predict("load", "", images, api_name="/clip_add")


def load_test(users: int = 8, seconds: float = 120.0, rounds: int = 2) -> dict[str, Any]:
    """Start a tiny-profile server in its own process and put ``users`` on it."""
    from gradio_client import Client

    users, seconds = max(1, min(users, MAX_USERS)), max(5.0, min(seconds, MAX_SECONDS))
    home = Path(tempfile.mkdtemp(prefix="mmdemo-load-"))
    adapters = _prepare_home(home, users)
    media = _media(home)
    server, url = _start_server(home)
    try:
        add_index(url)
        run = Client(url, verbose=False).predict(
            "lora", "builtin", "vqa", 2, 2, 0.0, 4, "language", "load-run", 0, api_name="/train"
        )  # a short training run whose status the users poll
        return exercise(url, server.pid, users, seconds, media, run["id"], adapters, rounds=rounds)
    finally:
        server.kill()
        server.wait()


def run(
    quick: bool = False, users: int = 8, seconds: float = 120.0, rounds: int = 2
) -> list[Table]:
    """The load test as tables: a summary row (benchmarks.md) and the per-endpoint latencies
    (reliability.md)."""
    if quick:
        users, seconds = 2, 10.0
    r = load_test(users, seconds, max(1, min(rounds, 10)))
    rss = r["rss"]
    growth, late = rss[-1] / rss[0] - 1, rss[-1] / rss[2] - 1
    idle = r["rss_idle"]
    mb = 2**20
    summary = Table(
        "load",
        "Load: concurrent API users on the tiny profile",
        ["users", "seconds", "requests", "requests/s", "errors", "cross-user answers",
         "server RSS at start, each quarter", "growth (second half)",
         "idle: before, after each round"],
    )  # fmt: skip
    summary.add(
        r["users"],
        r["seconds"],
        r["requests"],
        f"{r['requests_per_s']:.1f}",
        len(r["errors"]),
        len(r["crossed"]),
        " / ".join(f"{v / mb:.0f}" for v in rss) + " MB",
        f"{growth:+.1%} ({late:+.1%})",
        " / ".join(f"{v / mb:.0f}" for v in idle)
        + " MB ("
        + ", ".join(f"{b / a - 1:+.1%}" for a, b in itertools.pairwise(idle))
        + ")",
    )
    summary.notes.append(
        f"each user mixes chat (its own adapter: {r['users']} random LoRAs scaled to alpha/r = "
        f"16; the same question through each gave {r['distinct_answers']} distinct answers of "
        f"{r['users']}, so a crossed adapter shows), arena, CLIP search and zero-shot, voice, "
        "gestures on an image and a video, a video summary, training status and system "
        "status; every answer is compared with the same request's answer asked alone before "
        "the load; details per endpoint in docs/reliability.md",
    )
    summary.notes.append(
        f"Video summaries under load: {r['video_runs']} on {r['video_distinct']} distinct "
        "videos, each made for that request (a user's number and step drawn into the frames), "
        "so none was a cache hit: every one ran the whole pipeline (shots, speech, captions, "
        "summary) while the other users' requests ran; each result named its own video."
    )
    summary.notes.append(
        f"Memory: the server's resident memory, sampled once a second during the load (the "
        f"seconds are split into {r['rounds']} equal rounds); 'idle' samples are taken "
        f"{IDLE_S:.0f} s after the solo answers and after each round's last user stopped, when the server's heap trimmer (mmdemo/serve/memory.py) has given freed "
        "memory back. The quarters show the peak working set of concurrent answers (eight "
        "users' batches, video summaries) held while the load lasts; the idle figures show "
        "what stays afterwards: a leak would keep adding to it round after round, one-time "
        "state (every user's session, caches, the allocator's pools) only after the first."
    )
    summary.notes += [f"error: {e}" for e in r["errors"][:5]]
    summary.notes += [f"cross-user: {c}" for c in r["crossed"][:5]]
    per = Table(
        "load-endpoints",
        f"Load: latency per endpoint ({r['users']} users, {r['seconds']:.0f} s)",
        ["endpoint", "requests", "p50", "p95"],
    )
    for name, e in r["endpoints"].items():
        per.add(name, e["count"], f"{e['p50']:.2f} s", f"{e['p95']:.2f} s")
    return [summary, per]


def write_reliability(tables: list[Table]) -> Path:
    """Put the load tables into docs/reliability.md (their marked sections)."""
    for table in tables:
        write_section(table, RELIABILITY)
    return RELIABILITY
