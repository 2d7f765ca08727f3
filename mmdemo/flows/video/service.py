"""VideoService: summarise a video, answer questions about it, search its key frames.

One per process (the app keeps it in ``Services.video``), over the shared
``ModelManager``; results are cached under ``MMDEMO_HOME/video/<sha256>/``, so asking about a
file again, or by its ``video_id``, recomputes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, MMDemoError
from mmdemo.flows.video.ask import answer_question, check_question
from mmdemo.flows.video.cache import ID_PATTERN, STAGE_FILE, VideoCache
from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.pipeline import VideoRun
from mmdemo.flows.video.probe import probe
from mmdemo.flows.video.types import Answer, FrameHit, Progress, VideoResult
from mmdemo.flows.video.vectors import label_vectors, labels, rank
from mmdemo.flows.video.writer import Writer

KNOWN_IDS = 256  # (path, size, mtime) -> hash remembered, so a re-run skips re-hashing


class VideoService:
    """Video summaries over the shared model manager (``clip_index``: the CLIP tab's
    ``IndexService``, whose ``rank_images`` ranks frames that have no cached vectors)."""

    def __init__(
        self,
        settings: Settings,
        manager: Any,
        clip_index: Any = None,
        config: VideoConfig | None = None,
    ) -> None:
        self.settings = settings
        self.manager = manager
        # the server's limit on video length (MMDEMO_MAX_VIDEO_MINUTES) caps the config's
        hours = min((config or VideoConfig()).max_hours, settings.video_seconds / 3600)
        self.config = dataclasses.replace(config or VideoConfig(), max_hours=hours)
        self._clip_index = clip_index
        self._ids: OrderedDict[tuple[str, int, int], str] = OrderedDict()
        self._labels: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self.settings.home / "video"

    # -- summaries ------------------------------------------------------------------------------

    def run(
        self,
        path: str | Path,
        stop: threading.Event | None = None,
        max_bytes: int | None = None,
    ) -> Iterator[Progress | VideoResult]:
        """Progress messages, a partial ``VideoResult`` after each stage, and a final one
        (``complete`` False when a stage failed or the run was cancelled)."""
        info = probe(path, self.config, max_bytes)
        yield from VideoRun(self, Path(str(path)), info, stop or threading.Event()).run()

    def summarize(
        self,
        path: str | Path,
        stop: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        max_bytes: int | None = None,
    ) -> VideoResult:
        """Run to the end; the final result."""
        final = None
        for message in self.run(path, stop, max_bytes):
            if isinstance(message, Progress):
                if on_progress is not None:
                    on_progress(message)
            else:
                final = message
        return final

    def load(self, video_id: str) -> VideoResult:
        """A video summarised before (on this machine), by its id."""
        result = VideoCache(self.root, video_id.strip().lower()).load_result()
        if result is None:
            raise BadInputError(
                f"no video with id {video_id[:12]}… has been summarised here",
                fix="send the video file itself, or summarise it first (/video_summary)",
            )
        return result

    def result_for(
        self, video: str | Path, stop: threading.Event | None = None, max_bytes: int | None = None
    ) -> VideoResult:
        """By id (a 64-character hex string) or by file (summarised now unless cached)."""
        text = str(video or "").strip()
        if ID_PATTERN.match(text.lower()) and not Path(text).is_file():
            return self.load(text)
        return self.summarize(text, stop, max_bytes=max_bytes)

    # -- questions and search ---------------------------------------------------------------------

    def ask(
        self,
        video: str | Path | VideoResult,
        question: str,
        stop: threading.Event | None = None,
        max_bytes: int | None = None,
    ) -> Answer:
        """Answer from transcript, captions and the frames CLIP finds for the question."""
        question = check_question(question)
        result = (
            video if isinstance(video, VideoResult) else self.result_for(video, stop, max_bytes)
        )
        ranks: list[float] = []
        with contextlib.suppress(MMDemoError):  # no CLIP: the words alone choose the notes
            ranks = [hit.frame.time for hit in self.search(result, question, k=3)]
        writer = None
        remarks: list[str] = []
        try:
            writer = Writer(self.manager.get("llm"), self.config.llm_context, stop)
        except MMDemoError as exc:
            remarks.append(f"the text LLM is unavailable: {exc}")
        answer = answer_question(result, question, writer, self.config, ranks, stop)
        if remarks:
            return Answer(answer.text, answer.citations, (*answer.notes, *remarks))
        return answer

    def search(self, video: str | Path | VideoResult, text: str, k: int = 8) -> list[FrameHit]:
        """Key frames by similarity to ``text`` (CLIP), best first."""
        result = video if isinstance(video, VideoResult) else self.result_for(video)
        text = " ".join((text or "").split())
        if not text:
            raise BadInputError("nothing to search for", fix="type what the frame should show")
        if not result.key_frames:
            raise BadInputError(
                "this video has no key frames to search", fix="use a file with a picture"
            )
        vectors = self._cached_vectors(result)
        if vectors is not None:
            from mmdemo.retrieval.embed import embed_texts

            order = rank(vectors, embed_texts(self.manager.get("clip"), [text])[0])
        else:
            from PIL import Image

            images = []
            for frame in result.key_frames:
                with Image.open(frame.path) as image:
                    images.append(image.convert("RGB"))
            order = self.clip_index.rank_images(images, text)
        return [
            FrameHit(rank_, score, result.key_frames[i])
            for rank_, (i, score) in enumerate(order[: max(1, int(k))], 1)
        ]

    # -- helpers the pipeline uses ------------------------------------------------------------------

    @property
    def clip_index(self) -> Any:
        if self._clip_index is None:
            from mmdemo.retrieval import IndexService

            self._clip_index = IndexService(self.settings, self.manager)
        return self._clip_index

    def clip_shots(self, model_id: str) -> bool:
        """Whether CLIP may join cuts: never for random-weight builds under ``auto``."""
        mode = self.config.clip_shots
        return mode == "on" or (mode == "auto" and not model_id.startswith("tiny:"))

    def clip_labels(self, vectors: np.ndarray) -> list[str] | None:
        """CLIP's words for each key frame (a caption stand-in), or None without CLIP."""
        try:
            bundle = self.manager.get("clip")
        except MMDemoError:
            return None
        model = self.manager.model_id("clip")
        with self._lock:
            if model not in self._labels:
                self._labels[model] = label_vectors(bundle)
            label_vecs = self._labels[model]
        return labels(vectors, label_vecs)

    def known_id(self, path: Path, stat: os.stat_result) -> str | None:
        with self._lock:
            return self._ids.get((str(path), stat.st_size, stat.st_mtime_ns))

    def remember_id(self, path: Path, stat: os.stat_result, video_id: str) -> None:
        with self._lock:
            self._ids[(str(path), stat.st_size, stat.st_mtime_ns)] = video_id
            while len(self._ids) > KNOWN_IDS:
                self._ids.popitem(last=False)

    def _cached_vectors(self, result: VideoResult) -> np.ndarray | None:
        """The key frames' CLIP vectors saved by the pipeline, if made by the loaded model."""
        folder = VideoCache(self.root, result.video_id).stage_dir("vectors")
        try:
            data = json.loads((folder / STAGE_FILE).read_text(encoding="utf-8"))["data"]
            vectors = np.load(folder / "vectors.npy")
        except (OSError, ValueError, KeyError):
            return None
        names = [Path(k.path).name for k in result.key_frames]
        same = [f["key_file"] for f in data["frames"]] == names
        if not same or data["model"] != self.manager.model_id("clip"):
            return None
        return vectors
