"""What the Video tab shows (markdown, table rows, gallery items, download files) and the
per-session state it keeps in ``gr.State``; no gradio needed here."""

from __future__ import annotations

import copy
import tempfile
import threading
from pathlib import Path
from typing import Any

from mmdemo.flows.video.export import write_outputs
from mmdemo.flows.video.types import Answer, FrameHit, Progress, VideoResult, clock

CHAPTER_HEADERS = ["start", "end", "title"]
TRANSCRIPT_HEADERS = ["start", "end", "text"]


class VideoSession:
    """One browser session: the run's stop switch, and what is on screen (so a click on a
    chapter, key frame, transcript line, citation or search hit maps to a time)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.result: VideoResult | None = None
        self.hits: list[FrameHit] = []

    def __deepcopy__(self, memo: dict) -> VideoSession:
        fresh = VideoSession()
        fresh.result = copy.copy(self.result)
        return fresh


def status_md(message: Progress | VideoResult | str) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, Progress):
        return message.describe()
    done = ", ".join(f"{name} {secs:.1f} s" for name, secs in message.stages.items())
    reused = f" From the cache: {', '.join(message.reused)}." if message.reused else ""
    head = "**Done.**" if message.complete else "**Partial result.**"
    return f"{head} {len(message.chapters)} chapters, {len(message.key_frames)} key frames, " + (
        f"{len(message.transcript)} transcript lines. Time per stage: {done}.{reused}"
    )


def summary_md(result: VideoResult) -> str:
    info = result.info
    facts = [clock(info.duration)]
    if info.has_video:
        facts.append(f"{info.width}x{info.height}")
    facts.append("sound" if info.has_audio else "no sound")
    parts = [f"**{info.name}** ({', '.join(facts)})"]
    if result.summary:
        parts.append(result.summary)
    for c in result.chapters:
        bullets = "\n".join(f"  - {b}" for b in c.bullets)
        parts.append(f"- **{clock(c.start)} {c.title}**\n{bullets}")
    if result.notes:
        parts.append("_Notes:_\n" + "\n".join(f"- {n}" for n in result.notes))
    return "\n\n".join(parts)


def chapter_rows(result: VideoResult) -> list[list[str]]:
    return [[clock(c.start), clock(c.end), c.title] for c in result.chapters]


def transcript_rows(result: VideoResult) -> list[list[str]]:
    return [[clock(s.start), clock(s.end), s.text] for s in result.transcript]


def frame_items(frames: list[Any], captions: list[str] | None = None) -> list[tuple[Any, str]]:
    """(image, caption) gallery items; images are read here (the cache folder is not one
    Gradio serves files from)."""
    from PIL import Image

    items = []
    for i, frame in enumerate(frames):
        with Image.open(frame.path) as image:
            picture = image.convert("RGB")
        label = captions[i] if captions else f"{clock(frame.time)} · {frame.caption}"
        items.append((picture, label))
    return items


def hit_items(hits: list[FrameHit]) -> list[tuple[Any, str]]:
    return frame_items(
        [h.frame for h in hits], [f"{h.rank}. {clock(h.frame.time)} · {h.score:.3f}" for h in hits]
    )


def answer_md(answer: Answer) -> str:
    cites = ", ".join(clock(t) for t in answer.citations)
    notes = "".join(f"\n\n_{n}_" for n in answer.notes)
    return f"{answer.text}\n\n_Cites: {cites}_{notes}" if cites else answer.text + notes


def citation_choices(answer: Answer) -> list[tuple[str, float]]:
    return [(clock(t), float(t)) for t in answer.citations]


def downloads(result: VideoResult) -> list[str]:
    """SRT, VTT, JSON and Markdown in a per-video temporary folder (rewritten each time)."""
    folder = Path(tempfile.gettempdir()) / "mmdemo-video" / result.video_id[:16]
    files = write_outputs(result, folder)
    return [str(files[k]) for k in ("srt", "vtt", "json", "markdown")]
