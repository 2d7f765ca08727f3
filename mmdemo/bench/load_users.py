"""The simulated users of the load test (mmdemo/bench/load.py): what each one asks, the
answers it expects (its own solo answers), and the tally of what all of them saw."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "assets" / "images"
ADAPTERS = ("color-namer", "pirate")  # the demo adapters; the load test gives each user its own
PROMPTS = 3  # chat prompts per user (their solo answers are known)
PROBE = "What colour is the shape?"  # asked by every user, each through its own adapter
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
        # the first prompt is every user's (their adapters must answer it differently, or a
        # crossed adapter would go unseen); the others carry the user's marker, so a crossed
        # conversation is seen too
        self.prompts = [PROBE] + [
            f"User {index}, question {k}: what colour is the shape?" for k in range(1, PROMPTS)
        ]
        self.expected: dict[str, Any] = {}
        self.voice_turns = 0
        self.step = 0
        self.videos = 0  # videos made by this user
        self.summaries: list[str] = []  # the video_id of every summary it got back

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
        """A video nobody sent before (this user's, this step's), so the server cannot answer
        from its cache: every call runs the whole pipeline. Its result must name this video."""
        from gradio_client import handle_file

        from mmdemo.flows.video.cache import file_sha256

        self.videos += 1
        path = self.media["folder"] / f"user{self.index}-{self.videos}.mp4"
        _hand_video(path, self.media["hand"], tag=self.index * 10_000 + self.videos)
        result = self.client.predict(handle_file(str(path)), api_name="/video_summary")
        self.summaries.append(result["video_id"])
        return "video_summary", result["video_id"] == file_sha256(path)

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

    def step_once(self, tally: Tally, ops: list[Any] | None = None) -> None:
        """The next operation in this user's order, checked against its solo answer."""
        ops = ops or self.ops()
        op = ops[(self.index + self.step) % len(ops)]
        self.step += 1
        started = time.perf_counter()
        name = ENDPOINTS[op.__name__]
        try:
            key, value = op(self.step)
        except Exception as exc:  # counted, and the user carries on
            tally.record(name, time.perf_counter() - started, error=str(exc))
            return
        seconds = time.perf_counter() - started
        want = self.expected.get(key, True if name in ("/voice", "/video_summary") else None)
        crossed = "" if value == want else f"user {self.index}: {value!r} != {want!r}"
        tally.record(name, seconds, crossed=crossed)

    def run(self, deadline: float, tally: Tally) -> None:
        ops = self.ops()
        while time.monotonic() < deadline:
            self.step_once(tally, ops)


def _media(folder: Path) -> dict[str, Path]:
    """The files users send: pictures from assets, a recorded question, a hand video (and the
    folder where each user makes a fresh video for every summary)."""
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
        "folder": folder,
    }


def _hand_video(path: Path, picture: Path, seconds: float = 2.0, tag: int = 0) -> None:
    """A short MP4 of a still hand picture (PyAV); ``tag`` is drawn into a corner as a row of
    bits, so videos with different tags differ in content (and in their hash)."""
    import av
    import numpy as np
    from PIL import Image

    frame = np.array(Image.open(picture).convert("RGB").resize((320, 240)))
    for bit in range(24):
        if tag >> bit & 1:
            frame[224:240, bit * 12 : bit * 12 + 12] = (
                255 - frame[224:240, bit * 12 : bit * 12 + 12]
            )
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(int(seconds * 8)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
