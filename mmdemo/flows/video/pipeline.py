"""One run over one file: the stages in order, each taken from the cache when its key matches,
progress by step with an ETA, a partial result after every stage, and a final result that
keeps whatever finished when a stage fails or the user cancels."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError, MMDemoError
from mmdemo.flows.video.cache import VideoCache, sha256_blocks, stable_hash
from mmdemo.flows.video.captions import PROMPT, caption_stage
from mmdemo.flows.video.frames import frame_notes
from mmdemo.flows.video.progress import Tracker
from mmdemo.flows.video.shots import shots_stage
from mmdemo.flows.video.speech import speech_stage
from mmdemo.flows.video.summary import summary_stage
from mmdemo.flows.video.types import (
    STEPS,
    Cancelled,
    Chapter,
    KeyFrame,
    Progress,
    Segment,
    Shot,
    VideoInfo,
    VideoResult,
    check,
)
from mmdemo.flows.video.vectors import embed_frames, refine

log = logging.getLogger("mmdemo.video")
VERSION = 1  # bump when a stage's output changes meaning: old caches are then recomputed
STEP_OF = {"shots": "shots", "vectors": "shots", "speech": "speech", "captions": "captions"}
SHOT_FIELDS = (
    "max_samples",
    "min_interval_s",
    "max_interval_s",
    "keyframes_only_after_s",
    "frame_side",
    "cut_threshold",
    "cut_ratio",
    "drift_threshold",
    "merge_distance",
    "min_shot_s",
    "max_shot_s",
    "max_key_frames",
)
SUMMARY_FIELDS = (
    "max_chapters",
    "min_chapter_s",
    "llm_context",
    "chapter_tokens",
    "summary_tokens",
)


class VideoRun:
    """The stages over one checked file; ``run()`` yields ``Progress`` and ``VideoResult``."""

    def __init__(self, service: Any, path: Path, info: VideoInfo, stop: threading.Event) -> None:
        self.service = service
        self.manager = service.manager
        self.config = service.config
        self.path, self.info, self.stop = path, info, stop
        steps = {"open", "summary"}
        steps |= {"shots", "captions"} if info.has_video else set()
        steps |= {"speech"} if info.has_audio else set()
        self.tracker = Tracker(steps)
        self.shots: list[Shot] = []
        self.stretches: list[Shot] = []
        self.vectors: np.ndarray | None = None
        self.segments: list[Segment] = []
        self.speech: list[tuple[float, float]] = []

    def _forward(
        self, step: str, stage: Generator[tuple[float, str], None, Any]
    ) -> Generator[Progress, None, Any]:
        """Run a stage generator, turning its (fraction, detail) into Progress messages
        (the first at once, so the step shows as soon as it starts)."""
        yield self.tracker.progress(step, 0.0, "starting", force=True)
        while True:
            try:
                fraction, detail = next(stage)
            except StopIteration as done:
                return done.value
            progress = self.tracker.progress(step, fraction, detail)
            if progress is not None:
                yield progress

    def run(self) -> Iterator[Progress | VideoResult]:
        yield self.tracker.progress("open", 0.0, "checking the file", force=True)
        video_id = yield from self._hash()
        cache = VideoCache(self.service.root, video_id)
        result = VideoResult(video_id, self.info)
        with cache.lock(self.stop):
            self.tracker.finish("open")
            failed = False
            step = "open"
            try:
                for name, stage in (
                    ("shots", self._shots),
                    ("vectors", self._vectors),
                    ("speech", self._speech),
                    ("captions", self._captions),
                    ("summary", self._summary),
                ):
                    step = STEP_OF.get(name, name)
                    start = time.perf_counter()
                    try:
                        yield from stage(cache, result)
                    except (Cancelled, BadInputError):
                        raise
                    except MMDemoError as exc:
                        failed = True
                        result.notes.append(f"{_label(step)} failed: {exc}; the rest is kept")
                    except Exception as exc:  # a bug or a file no one foresaw: keep the rest
                        log.exception("video stage %s failed", name)
                        failed = True
                        result.notes.append(
                            f"{_label(step)} failed unexpectedly ({type(exc).__name__}: {exc}); "
                            "the rest is kept"
                        )
                    result.stages[name] = time.perf_counter() - start
                    self.tracker.finish(step)
                    yield result.snapshot()
            except Cancelled:
                result.notes.append(
                    f"cancelled while {_label(step)}: the finished steps are kept, and running "
                    "it again continues from there"
                )
                result.complete = False
                yield result
                return
            result.complete = not failed
            cache.save_result(result)
        yield result

    def _hash(self) -> Generator[Progress, None, str]:
        path = self.path
        stat = path.stat()
        known = self.service.known_id(path, stat)
        if known is not None:
            return known
        hashing = sha256_blocks(path, self.stop)
        while True:
            try:
                fraction = next(hashing)
            except StopIteration as done:
                digest = done.value
                break
            progress = self.tracker.progress("open", fraction, "fingerprinting the file")
            if progress is not None:
                yield progress
        self.service.remember_id(path, stat, digest)
        return digest

    # -- stages ---------------------------------------------------------------------------------

    def _shots(self, cache: VideoCache, result: VideoResult) -> Generator[Progress, None, None]:
        info, cfg = self.info, self.config
        if not info.has_video:
            result.notes.append("the file has no picture (sound only): there are no key frames")
            return
        key = {"v": VERSION, **cfg.key(*SHOT_FIELDS)}
        data = cache.load("shots", key)
        if data is None:
            with cache.write("shots", key) as (folder, data):
                res = yield from self._forward(
                    "shots", shots_stage(self.path, info, cfg, folder, self.stop)
                )
                data["shots"] = [asdict(s) for s in res.shots]
                data["key_frames"] = [asdict(s) for s in res.key_frames]
                data["stats"] = asdict(res.stats)
        else:
            result.reused.append("shots")
            self.tracker.skip("shots")
        self.shots = [Shot(**s) for s in data["shots"]]
        self._set_frames(cache, result, [Shot(**s) for s in data["key_frames"]])
        result.notes += frame_notes(data["stats"], info)
        if data["stats"]["sampled"] == 0 and not info.has_audio:
            raise BadInputError(
                f"{info.name} holds no frame that can be decoded and no sound "
                f"({info.duration:.1f} seconds long)",
                fix="check that the file plays in a video player, then upload it again",
            )

    def _set_frames(self, cache: VideoCache, result: VideoResult, stretches: list[Shot]) -> None:
        self.stretches = stretches
        folder = cache.stage_dir("shots")
        result.key_frames = [
            KeyFrame(s.key_time, s.start, s.end, str(folder / s.key_file)) for s in stretches
        ]

    def _vectors(self, cache: VideoCache, result: VideoResult) -> Generator[Progress, None, None]:
        if not self.stretches:
            return
        model = self.manager.model_id("clip")
        key = {
            "v": VERSION,
            "clip": model,
            "frames": [s.key_file for s in self.stretches],
            **self.config.key("clip_shots", "clip_merge_similarity", "cut_threshold"),
        }
        data = cache.load("vectors", key)
        if data is None:
            try:
                bundle = self.manager.get("clip")
            except MMDemoError as exc:
                result.notes.append(
                    f"CLIP is unavailable, so key frames cannot be searched by text: {exc}"
                )
                return
            yield self.tracker.progress("shots", 1.0, "CLIP looks at the key frames", force=True)
            paths = [k.path for k in result.key_frames]
            vectors = embed_frames(bundle, paths, self.stop)
            frames = self.stretches
            if self.service.clip_shots(model):
                frames, vectors = refine(frames, vectors, self.config)
            with cache.write("vectors", key) as (folder, data):
                np.save(folder / "vectors.npy", vectors)
                data["model"] = model
                data["frames"] = [asdict(s) for s in frames]
                data["merged"] = len(self.stretches) - len(frames)
        else:
            result.reused.append("vectors")
        self.vectors = np.load(cache.stage_dir("vectors") / "vectors.npy")
        self._set_frames(cache, result, [Shot(**s) for s in data["frames"]])
        if data["merged"]:
            result.notes.append(
                f"CLIP saw {data['merged']} borderline cut(s) as the same scene; they were joined"
            )

    def _speech(self, cache: VideoCache, result: VideoResult) -> Generator[Progress, None, None]:
        if not self.info.has_audio:
            result.notes.append(
                "the file has no sound track: the summary draws on the pictures only"
            )
            return
        key = {
            "v": VERSION,
            "asr": self.manager.model_id("asr"),
            **self.config.key("audio_block_s"),
        }
        data = cache.load("speech", key)
        if data is None:
            res = yield from self._forward(
                "speech",
                speech_stage(
                    self.path,
                    self.info,
                    lambda: self.manager.get("asr"),
                    self.config.audio_block_s,
                    stop=self.stop,
                ),
            )
            with cache.write("speech", key) as (_, data):
                data["segments"] = [asdict(s) for s in res.segments]
                data["spans"] = res.spans
                data["notes"] = res.notes
                data["stats"] = asdict(res.stats)
        else:
            result.reused.append("speech")
            self.tracker.skip("speech")
        self.segments = [Segment(**s) for s in data["segments"]]
        self.speech = [tuple(span) for span in data["spans"]]
        result.transcript = list(self.segments)
        result.notes += data["notes"]

    def _captions(self, cache: VideoCache, result: VideoResult) -> Generator[Progress, None, None]:
        if not result.key_frames:
            return
        paths = [k.path for k in result.key_frames]
        key = {
            "v": VERSION,
            "vlm": self.manager.model_id("vlm"),
            "clip": self.manager.model_id("clip") if self.vectors is not None else None,
            "frames": [Path(p).name for p in paths],
            "prompt": PROMPT,
            **self.config.key("caption_batch", "caption_tokens"),
        }
        data = cache.load("captions", key)
        if data is None:
            vectors = self.vectors
            clip_labels = self.service.clip_labels(vectors) if vectors is not None else None
            res = yield from self._forward(
                "captions",
                caption_stage(
                    paths,
                    lambda: self.manager.get("vlm"),
                    clip_labels,
                    self.config.caption_batch,
                    self.config.caption_tokens,
                    self.stop,
                ),
            )
            data = {"captions": res.captions, "sources": res.sources, "notes": res.notes}
            if res.vlm_ok:  # a result without the VLM is redone once the VLM is there
                with cache.write("captions", key) as (_, saved):
                    saved.update(data)
        else:
            result.reused.append("captions")
            self.tracker.skip("captions")
        result.key_frames = [
            KeyFrame(k.time, k.start, k.end, k.path, caption, source)
            for k, caption, source in zip(
                result.key_frames, data["captions"], data["sources"], strict=True
            )
        ]
        result.notes += data["notes"]

    def _summary(self, cache: VideoCache, result: VideoResult) -> Generator[Progress, None, None]:
        check(self.stop)
        ends = [s.end for s in self.shots] + [s.end for s in self.segments]
        duration = self.info.duration or max(ends, default=0.0)
        frames = [(k.time, k.caption) for k in result.key_frames]
        inputs = stable_hash(
            [
                [asdict(s) for s in self.shots],
                frames,
                [asdict(s) for s in self.segments],
                self.speech,
            ]
        )
        key = {
            "v": VERSION,
            "llm": self.manager.model_id("llm"),
            "inputs": inputs,
            **self.config.key(*SUMMARY_FIELDS),
        }
        data = cache.load("summary", key)
        if data is None:
            res = yield from self._forward(
                "summary",
                summary_stage(
                    duration,
                    self.shots,
                    result.key_frames,
                    self.segments,
                    self.speech,
                    lambda: self.manager.get("llm"),
                    self.config,
                    self.stop,
                ),
            )
            data = {
                "chapters": [asdict(c) for c in res.chapters],
                "summary": res.summary,
                "notes": res.notes,
                "llm_calls": [asdict(c) for c in res.calls],
            }
            if res.llm_ok:
                with cache.write("summary", key) as (_, saved):
                    saved.update(data)
        else:
            result.reused.append("summary")
            self.tracker.skip("summary")
        result.chapters = [
            Chapter(c["start"], c["end"], c["title"], tuple(c["bullets"])) for c in data["chapters"]
        ]
        result.summary = data["summary"]
        result.notes += data["notes"]


def _label(step: str) -> str:
    return next(label for name, label in STEPS if name == step)
