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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table, write_section

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "assets" / "images"
RELIABILITY = REPO / "docs" / "reliability.md"
MAX_USERS, MAX_SECONDS = 32, 600
ADAPTERS = ("color-namer", "pirate", "random-3")  # the third is made for the run
PROMPTS = 3  # distinct chat prompts per user (their solo answers are known)
ENDPOINTS = {  # user operation -> the endpoint it calls
    "chat": "/chat",
    "arena": "/arena",
    "clip_search": "/clip_search",
    "clip_classify": "/clip_classify",
    "voice": "/voice",
    "gestures": "/gestures",
    "gestures_video": "/gestures_video",
    "video_summary": "/video_summary",
    "train_status": "/train_status",
    "system": "/system_status",
}

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


@dataclass
class Tally:
    """What the users saw: latencies per endpoint, errors, cross-user answers."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    crossed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, seconds: float, error: str = "", crossed: str = "") -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds)
            if error:
                self.errors.append(f"{endpoint}: {error[:200]}")
            if crossed:
                self.crossed.append(f"{endpoint}: {crossed[:200]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_home(home: Path) -> None:
    """Tiny models (built once in the user's cache) and a third adapter with random weights."""
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
    try:
        bundle = manager.get("vlm")
        out = settings.home / "adapters" / ADAPTERS[2]
        random_adapter(bundle.model, out, seed=3)
        write_metadata(
            out,
            {"base_model": manager.model_id("vlm"), "base_model_type": bundle.family,
             "method": "lora", "dataset": "random"},
        )  # fmt: skip
    finally:
        manager.unload_all()


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
    line = proc.stdout.readline()
    if "ready" not in line:
        proc.kill()
        raise RuntimeError(f"the app did not start (exit {proc.poll()})")
    return proc, f"http://127.0.0.1:{port}/"


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


class User:
    """One simulated user: its own session, prompts with its marker, its own adapter."""

    def __init__(
        self,
        index: int,
        url: str,
        media: dict[str, Path],
        run_id: str = "",
        adapters: tuple[str, ...] = ADAPTERS,
    ) -> None:
        from gradio_client import Client

        self.index = index
        self.client = Client(url, verbose=False)
        self.adapter = adapters[index % len(adapters)]
        self.media = media
        self.run_id = run_id
        self.prompts = [
            f"User {index}, question {k}: what colour is the shape?" for k in range(PROMPTS)
        ]
        self.expected: dict[str, Any] = {}
        self.voice_turns = 0
        self.step = 0

    # each op returns (endpoint, comparable result); ``solo`` records it as the expectation
    def ops(self) -> list[Any]:
        return [
            self.chat, self.clip_search, self.arena, self.voice, self.clip_classify,
            self.gestures, self.chat, self.gestures_video, self.train_status, self.system,
            self.video_summary,
        ]  # fmt: skip

    def _file(self, name: str) -> Any:
        from gradio_client import handle_file

        return handle_file(str(self.media[name]))

    def chat(self, k: int) -> tuple[str, Any]:
        prompt = self.prompts[k % PROMPTS]
        answer = self.client.predict(
            prompt, [self._file("red")], self.adapter, 12, True, api_name="/chat"
        )
        return f"chat:{prompt}", answer

    def arena(self, k: int) -> tuple[str, Any]:
        prompt = self.prompts[0]
        result = self.client.predict(
            self._file("blue"), prompt, ["base", self.adapter], api_name="/arena"
        )
        return f"arena:{prompt}", [(c["adapter"], c["text"]) for c in result["columns"]]

    def clip_search(self, k: int) -> tuple[str, Any]:
        text = ["a cat", "a rocket", "a cup of coffee"][self.index % 3]
        found = self.client.predict("load", text, None, 3, api_name="/clip_search")
        return f"search:{text}", [h["name"] for h in found["hits"]]

    def clip_classify(self, k: int) -> tuple[str, Any]:
        result = self.client.predict(
            self._file("cat"), "cat, dog, rocket", "", api_name="/clip_classify"
        )
        return "classify", [row["label"] for row in result["labels"]]

    def voice(self, k: int) -> tuple[str, Any]:
        result = self.client.predict(
            self._file("speech"), None, "default", "auto", 1.0, "base", api_name="/voice"
        )
        self.voice_turns += 1
        return "voice", result["turn"] == self.voice_turns  # its own history, nobody else's

    def gestures(self, k: int) -> tuple[str, Any]:
        result = self.client.predict(self._file("hand"), api_name="/gestures")
        return "gestures", [h["gesture"] for h in result["hands"]]

    def gestures_video(self, k: int) -> tuple[str, Any]:
        result = self.client.predict(self._file("video"), 4, 30, api_name="/gestures_video")
        return "gestures_video", [[h["gesture"] for h in f["hands"]] for f in result["frames"]]

    def video_summary(self, k: int) -> tuple[str, Any]:
        result = self.client.predict(self._file("video"), api_name="/video_summary")
        return "video_summary", (result["video_id"], result["summary"])

    def train_status(self, k: int) -> tuple[str, Any]:
        if not self.run_id:  # no run to follow: the list of methods instead
            return "train_status", len(self.client.predict(api_name="/train_methods"))
        status = self.client.predict(self.run_id, api_name="/train_status")
        return "train_status", status["id"]

    def system(self, k: int) -> tuple[str, Any]:
        status = self.client.predict(api_name="/system_status")
        return "system_status", status["profile"]

    def solo(self) -> None:
        """Ask every kind of request once, alone: the answers the load must reproduce."""
        for k in range(PROMPTS):
            key, value = self.chat(k)
            self.expected[key] = value
        for op in self.ops():
            if op is not self.chat:
                key, value = op(0)
                self.expected[key] = value
        self.client.predict(api_name="/voice_clear")
        self.voice_turns = 0

    def run(self, deadline: float, tally: Tally) -> None:
        ops = self.ops()
        while time.monotonic() < deadline:
            op = ops[(self.index + self.step) % len(ops)]
            self.step += 1
            started = time.perf_counter()
            name = ENDPOINTS[op.__name__]
            try:
                key, value = op(self.step)
            except Exception as exc:  # counted, and the user carries on
                tally.record(name, time.perf_counter() - started, error=str(exc))
                continue
            seconds = time.perf_counter() - started
            want = self.expected.get(key, True if name == "voice" else None)
            crossed = "" if value == want else f"user {self.index}: {value!r} != {want!r}"
            tally.record(name, seconds, crossed=crossed)


def _media(folder: Path) -> dict[str, Path]:
    """The files users send: pictures from assets, a recorded question, a hand video."""
    from mmdemo.bench.voice import librivox_clips

    video = folder / "hand.mp4"
    _hand_video(video, IMAGES / "gestures" / "thumbs-up.png")
    speech = librivox_clips()[1][0]
    return {
        "red": IMAGES / "red-circle.png",
        "blue": IMAGES / "blue-square.png",
        "cat": IMAGES / "cat.jpg",
        "hand": IMAGES / "gestures" / "thumbs-up.png",
        "video": video,
        "speech": Path(speech),
    }


def _hand_video(path: Path, picture: Path, seconds: float = 2.0) -> None:
    """A short MP4 of a still hand picture (PyAV)."""
    import av
    import numpy as np
    from PIL import Image

    frame = np.asarray(Image.open(picture).convert("RGB").resize((320, 240)))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(int(seconds * 8)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


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
    _prepare_home(home)
    media = _media(home)
    server, url = _start_server(home)
    try:
        add_index(url)
        run = Client(url, verbose=False).predict(
            "lora", "builtin", "vqa", 2, 2, 0.0, 4, "language", "load-run", 0, api_name="/train"
        )  # a short training run whose status the users poll
        return exercise(url, server.pid, users, seconds, media, run["id"], rounds=rounds)
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
        "each user mixes chat (its own adapter of 3), arena, CLIP search and zero-shot, voice, "
        "gestures on an image and a video, a video summary, training status and system "
        "status; every answer "
        "is compared with the same request's answer asked alone before the load; "
        "details per endpoint in docs/reliability.md",
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
