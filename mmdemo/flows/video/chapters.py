"""Chapter boundaries from what is seen and what is said: strong picture cuts, pauses in the
speech, best of all both at once; never in the middle of a sentence if it can be helped."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.types import KeyFrame, Segment, Shot

STRONG = 1.2  # a boundary this good is taken beyond the usual chapter count
WEAK = 0.15  # below this a boundary is not worth a chapter
PAUSE_S = 0.8  # a gap in speech at least this long is a pause
NEAR_S = 1.5  # a cut this close to a pause counts as both


@dataclass(frozen=True)
class Candidate:
    time: float
    score: float
    why: str  # "cut", "pause", "cut+pause", "split"


def candidates(shots: Sequence[Shot], speech: Sequence[tuple[float, float]]) -> list[Candidate]:
    """Possible boundaries with a score: picture cuts (by strength), pauses between the
    ``speech`` spans (by length), both together scoring highest; a cut while someone is
    speaking scores less."""
    pauses = [
        ((a[1] + b[0]) / 2, b[0] - a[1])
        for a, b in itertools.pairwise(speech)
        if b[0] - a[1] >= PAUSE_S
    ]
    out: list[Candidate] = []
    used: set[int] = set()
    for shot in shots[1:]:
        if shot.soft:
            out.append(Candidate(shot.start, 0.05, "split"))
            continue
        score, why = min(1.0, shot.cut / 0.6), "cut"
        near = [i for i, (t, _) in enumerate(pauses) if abs(t - shot.start) <= NEAR_S]
        if near:
            used.update(near)
            score, why = score + 0.5, "cut+pause"
        elif any(a + 0.3 < shot.start < b - 0.3 for a, b in speech):
            score *= 0.6  # mid-sentence
        out.append(Candidate(shot.start, score, why))
    for i, (t, gap) in enumerate(pauses):
        if i not in used:
            out.append(Candidate(t, 0.6 * min(1.0, gap / 3.0), "pause"))
    return sorted(out, key=lambda c: c.time)


def usual_count(duration: float, config: VideoConfig) -> int:
    """About 2 chapters for half a minute, 7 for five minutes, 13 for twenty."""
    return max(1, min(config.max_chapters, round(3 * math.sqrt(max(duration, 0) / 60))))


def chapter_spans(
    duration: float,
    shots: Sequence[Shot],
    speech: Sequence[tuple[float, float]],
    config: VideoConfig,
) -> list[tuple[float, float]]:
    """(start, end) of each chapter, covering 0..duration without gaps; ``speech`` holds the
    spans where someone speaks (the VAD's, or the transcript's segments)."""
    end = max([duration, *(s.end for s in shots), *(b for _, b in speech)], default=0.0)
    if end <= 0:
        return [(0.0, 0.0)]
    min_len = max(config.min_chapter_s, end / (2 * config.max_chapters))
    usual = usual_count(end, config)
    chosen: list[float] = []
    for c in sorted(candidates(shots, speech), key=lambda c: -c.score):
        if c.score < WEAK or len(chosen) >= config.max_chapters - 1:
            break
        if len(chosen) >= usual - 1 and c.score < STRONG:
            continue
        if c.time < min_len or end - c.time < min_len:
            continue
        if any(abs(c.time - t) < min_len for t in chosen):
            continue
        chosen.append(c.time)
    edges = [0.0, *sorted(chosen), end]
    return [(round(a, 2), round(b, 2)) for a, b in itertools.pairwise(edges)]


def inside(start: float, end: float, segments: Sequence[Segment]) -> list[Segment]:
    """Segments whose middle falls in [start, end)."""
    return [s for s in segments if start <= (s.start + s.end) / 2 < end]


def frames_inside(start: float, end: float, frames: Sequence[KeyFrame]) -> list[KeyFrame]:
    return [f for f in frames if start <= f.time < end]
