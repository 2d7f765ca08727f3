"""Results as files: JSON (the API's shape), Markdown (summary, chapters, key frames,
transcript), SRT and WebVTT subtitles of the transcript."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from mmdemo.flows.video.types import Segment, VideoResult, clock


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{sep}{ms:03d}"


def srt(segments: Sequence[Segment]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    blocks = [
        f"{i}\n{_stamp(s.start, ',')} --> {_stamp(max(s.end, s.start + 0.01), ',')}\n{s.text}\n"
        for i, s in enumerate(segments, 1)
    ]
    return "\n".join(blocks)


def vtt(segments: Sequence[Segment]) -> str:
    """WebVTT: a header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues."""
    cues = [
        f"{_stamp(s.start, '.')} --> {_stamp(max(s.end, s.start + 0.01), '.')}\n{s.text}\n"
        for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def markdown(result: VideoResult, frames_dir: str | None = "key_frames") -> str:
    info = result.info
    lines = [f"# {info.name}", "", f"_{clock(info.duration)} · video id `{result.video_id}`_", ""]
    lines += ["## Summary", "", result.summary or "_(none)_", ""]
    if result.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in result.notes], ""]
    lines += ["## Chapters", ""]
    for c in result.chapters:
        lines.append(f"### {clock(c.start)}–{clock(c.end)} {c.title}")
        lines += ["", *[f"- {b}" for b in c.bullets], ""]
    if result.key_frames:
        lines += ["## Key frames", ""]
        for k in result.key_frames:
            image = f"![{clock(k.time)}]({frames_dir}/{Path(k.path).name}) " if frames_dir else ""
            lines.append(f"- {image}**{clock(k.time)}** {k.caption}")
        lines.append("")
    lines += ["## Transcript", ""]
    lines += [f"- [{clock(s.start)}] {s.text}" for s in result.transcript] or ["_(no speech)_"]
    return "\n".join(lines) + "\n"


def write_outputs(result: VideoResult, out_dir: str | Path) -> dict[str, Path]:
    """summary.json, summary.md, transcript.srt, transcript.vtt and key_frames/*.jpg."""
    out = Path(out_dir)
    frames = out / "key_frames"
    frames.mkdir(parents=True, exist_ok=True)
    for k in result.key_frames:
        if Path(k.path).is_file():
            shutil.copy2(k.path, frames / Path(k.path).name)
    files = {
        "json": out / "summary.json",
        "markdown": out / "summary.md",
        "srt": out / "transcript.srt",
        "vtt": out / "transcript.vtt",
    }
    files["json"].write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    files["markdown"].write_text(markdown(result), encoding="utf-8")
    files["srt"].write_text(srt(result.transcript), encoding="utf-8")
    files["vtt"].write_text(vtt(result.transcript), encoding="utf-8")
    return files
