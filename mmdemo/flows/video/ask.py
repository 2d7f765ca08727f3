"""Questions about a summarised video: the transcript lines and key-frame captions that match
the question best (words in common, and CLIP's ranking of the key frames for the question)
go to the text LLM, which answers citing times. Nothing of the video is recomputed."""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from mmdemo.errors import BadInputError
from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.text import (
    clip_words,
    content_words,
    grounded,
    sentences,
    stem,
    stems,
    usable,
)
from mmdemo.flows.video.types import Answer, VideoResult, clock
from mmdemo.flows.video.writer import Writer

SYSTEM = (
    "You answer questions about a video using only the notes given. Each note starts with its "
    "time. Answer in one to three sentences and give the time, like [01:23], of the notes you "
    "use."
)
MAX_QUESTION_CHARS = 1000
TIME = re.compile(r"\b(?:(\d{1,2}):)?(\d{1,2}):(\d{2})\b")
CLIP_BONUS = (1.5, 1.0, 0.5)  # added to the three key frames CLIP ranks best for the question


@dataclass(frozen=True)
class Note:
    time: float
    kind: str  # "said", "seen" or "chapter"
    text: str

    def line(self) -> str:
        return f"[{clock(self.time)}] {self.kind}: {self.text}"


def check_question(question: str) -> str:
    question = " ".join((question or "").split())
    if not question:
        raise BadInputError("the question is empty", fix="type a question about the video")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadInputError(
            f"the question has {len(question)} characters",
            fix=f"ask in at most {MAX_QUESTION_CHARS}",
        )
    return question


def notes_of(result: VideoResult) -> list[Note]:
    notes = [Note(s.start, "said", s.text) for s in result.transcript]
    notes += [
        Note(f.time, "seen", f.caption.removesuffix(" (CLIP)"))
        for f in result.key_frames
        if f.caption
    ]
    notes += [
        Note(c.start, "chapter", f"{c.title}. " + " ".join(c.bullets)) for c in result.chapters
    ]
    return notes


def retrieve(
    question: str,
    notes: Sequence[Note],
    frame_ranks: Sequence[float] = (),
    k: int = 14,
) -> list[tuple[Note, float]]:
    """The ``k`` notes that best match the question: shared content words weighted by rarity,
    plus a bonus for the key frames CLIP ranks best (``frame_ranks``: their times, best first)."""
    asked = stems(question)
    docs = [Counter(stem(w) for w in content_words(n.text)) for n in notes]
    df = Counter(w for d in docs for w in d)
    total = max(1, len(notes))
    scored = []
    for note, doc in zip(notes, docs, strict=True):
        score = sum(1.0 + math.log(total / df[w]) for w in asked if w in doc)
        if note.kind == "seen":
            for bonus, t in zip(CLIP_BONUS, frame_ranks, strict=False):
                if abs(t - note.time) < 0.01:
                    score += bonus
        scored.append((note, score))
    ranked = sorted(scored, key=lambda ns: -ns[1])
    hits = [ns for ns in ranked if ns[1] > 0][:k]
    if not hits:  # nothing in common: the chapters give the gist
        hits = [(n, 0.0) for n in notes if n.kind == "chapter"][:k] or ranked[:k]
    return hits


def cited_times(text: str, notes: Sequence[Note]) -> list[float]:
    """Times written in the answer that match a note given to the model."""
    out = []
    for h, m, s in TIME.findall(text):
        t = int(h or 0) * 3600 + int(m) * 60 + int(s)
        match = [n.time for n in notes if abs(n.time - t) <= 1.0]
        if match and match[0] not in out:
            out.append(match[0])
    return out


def answer_question(
    result: VideoResult,
    question: str,
    writer: Writer | None,
    config: VideoConfig,
    frame_ranks: Sequence[float] = (),
    stop: threading.Event | None = None,
) -> Answer:
    """Answer from the result's transcript, captions and chapters; ``writer`` None (no LLM)
    gives the best-matching notes themselves."""
    question = check_question(question)
    notes_used = retrieve(question, notes_of(result), frame_ranks, config.ask_context_items)
    if not notes_used:
        return Answer("The video has no transcript or captions to answer from.", (), ())
    best_first = [n for n, _ in notes_used]
    context = sorted(best_first, key=lambda n: n.time)
    remarks: list[str] = []
    text = ""
    if writer is not None:
        budget = writer.budget(SYSTEM, config.answer_tokens) - writer.count(question) - 16
        lines = writer.truncate([n.line() for n in context], budget)
        user = "Notes:\n" + "\n".join(lines) + f"\n\nQuestion: {question}"
        text = " ".join(writer.write(SYSTEM, user, config.answer_tokens).split())
        text = " ".join(sentences(text)[:4])
    cites = cited_times(text, context) if text else []
    vocab = set(content_words(" ".join(n.text for n in context) + " " + question))
    if not (usable(text, 3) and grounded(text, vocab, 2, 0.3)):
        top = best_first[0]
        if writer is not None:
            remarks.append(
                "the LLM's answer was empty, unreadable or not about the video; the "
                "best-matching note stands in"
            )
        text = f"The closest the video comes: [{clock(top.time)}] {clip_words(top.text, 40)}"
        cites = []
    if not cites:
        cites = [n.time for n in best_first[:3]]
    return Answer(text, tuple(round(t, 2) for t in cites), tuple(remarks))
