"""Every knob of the video pipeline in one checked dataclass (defaults suit a laptop CPU)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmdemo.errors import SettingsError

CLIP_SHOTS = ("auto", "on", "off")


@dataclass(frozen=True)
class VideoConfig:
    """How a video is sampled, cut, heard, captioned and summarised."""

    # frames looked at over the whole video, at most: the sampling interval grows with length
    max_samples: int = 2400
    # sampling interval bounds in seconds (short videos: dense; 3-hour videos: sparse)
    min_interval_s: float = 0.25
    max_interval_s: float = 5.0
    # decode only the stream's own key frames above this length (a 3-hour film on a CPU)
    keyframes_only_after_s: float = 3600.0
    # longest side of sampled frames and saved key frames (pixels)
    frame_side: int = 384
    # colour-histogram change (total variation, 0..1) that counts as a cut ...
    cut_threshold: float = 0.3
    # ... when it is also this many times the median change of the last ~2 s
    cut_ratio: float = 3.0
    # drift from the shot's average colours that closes a shot (dissolves, long pans)
    drift_threshold: float = 0.55
    # neighbouring shots closer than this in average colour are one shot (flashes)
    merge_distance: float = 0.15
    # no shot shorter than this
    min_shot_s: float = 1.0
    # a shot longer than this is split, so a long static video still gets several key frames;
    # 0 means max(30 s, duration / max_key_frames)
    max_shot_s: float = 0.0
    # key frames kept (weakest cuts merged first beyond this)
    max_key_frames: int = 48
    # CLIP joins borderline cuts between frames it sees as the same scene: auto = not for
    # random-weight (tiny:) models, whose similarities mean nothing
    clip_shots: str = "auto"
    clip_merge_similarity: float = 0.92
    # audio handed to VAD + ASR at once (seconds); bounds memory for any length
    audio_block_s: float = 60.0
    # key frames captioned per VLM forward pass, and caption length
    caption_batch: int = 4
    caption_tokens: int = 32
    # chapters: at most this many, none shorter than this
    max_chapters: int = 12
    min_chapter_s: float = 4.0
    # the LLM's context used per prompt (tokens; the model's own limit caps it too)
    llm_context: int = 2048
    chapter_tokens: int = 40
    summary_tokens: int = 80
    answer_tokens: int = 96
    # transcript and caption lines given to the LLM for a question
    ask_context_items: int = 14
    # refuse videos longer than this (hours)
    max_hours: float = 12.0

    def __post_init__(self) -> None:
        checks = (
            ("max_samples", 10, 100_000),
            ("min_interval_s", 0.02, 60.0),
            ("max_interval_s", 0.02, 600.0),
            ("frame_side", 32, 2048),
            ("cut_threshold", 0.01, 1.0),
            ("cut_ratio", 1.0, 100.0),
            ("drift_threshold", 0.01, 1.0),
            ("merge_distance", 0.0, 1.0),
            ("min_shot_s", 0.0, 600.0),
            ("max_shot_s", 0.0, 36_000.0),
            ("max_key_frames", 1, 1000),
            ("clip_merge_similarity", 0.0, 1.0),
            ("audio_block_s", 10.0, 3600.0),
            ("caption_batch", 1, 64),
            ("caption_tokens", 4, 256),
            ("max_chapters", 1, 200),
            ("min_chapter_s", 0.0, 3600.0),
            ("llm_context", 256, 131_072),
            ("chapter_tokens", 8, 1024),
            ("summary_tokens", 8, 2048),
            ("answer_tokens", 8, 2048),
            ("ask_context_items", 1, 200),
            ("max_hours", 0.01, 100.0),
        )
        for name, low, high in checks:
            value = getattr(self, name)
            if not low <= value <= high:
                raise SettingsError(f"video setting {name}={value} is outside {low}..{high}")
        if self.min_interval_s > self.max_interval_s:
            raise SettingsError("video setting min_interval_s is above max_interval_s")
        if self.clip_shots not in CLIP_SHOTS:
            raise SettingsError(
                f"video setting clip_shots={self.clip_shots!r} is not one of {CLIP_SHOTS}"
            )
        if self.llm_context < 2 * max(self.chapter_tokens, self.summary_tokens, self.answer_tokens):
            raise SettingsError("video setting llm_context leaves no room for the prompt")

    def key(self, *names: str) -> dict[str, Any]:
        """The named fields as a dict: part of a stage's cache key."""
        values = asdict(self)
        return {name: values[name] for name in names}
