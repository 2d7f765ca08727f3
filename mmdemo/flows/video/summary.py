"""Stage 5: chapters with titles and bullets, and a written summary, from captions (what is
seen) and the transcript (what is said).

Each chapter gets a title and a one-sentence gist from the LLM, plus the sentence of its
transcript that best represents it and what its key frame shows; the summary is written
from the chapters. Material longer than the LLM's context is condensed map-reduce style
first. An LLM text is kept only if it is readable and uses words of the video (small models
drift into invented stories); extracts stand in otherwise, and the result says so.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdemo.errors import MMDemoError
from mmdemo.flows.video.chapters import chapter_spans, frames_inside, inside
from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.text import (
    STOPWORDS,
    clip_words,
    content_words,
    first_sentence,
    grounded,
    sentences,
    title_case_start,
    usable,
)
from mmdemo.flows.video.types import Chapter, KeyFrame, Segment, Shot, check, clock
from mmdemo.flows.video.writer import LLMCall, Writer
from mmdemo.heap import trim_free_memory

SYSTEM = (
    "You take notes on videos. You only use facts from the transcript and captions you are given."
)
HEADER = "Transcript and captions of a part of a video ({start} to {end}):"
TITLE_ASK = "Write a title of three to six words for this part."
GIST_ASK = "In one short sentence, what is said and shown in this part?"
MAP_ASK = "Summarise these notes in two sentences."
SUMMARY_ASK = "Summarise the whole video in two or three sentences."
TITLE_TOKENS = 16
TITLES = ("mr.", "mrs.", "ms.", "dr.", "prof.", "st.")


@dataclass
class SummaryResult:
    chapters: list[Chapter]
    summary: str
    notes: list[str] = field(default_factory=list)
    calls: list[LLMCall] = field(default_factory=list)
    llm_ok: bool = False  # the LLM loaded (else the extracts are not worth caching)


def material(frames: Sequence[KeyFrame], segments: Sequence[Segment]) -> list[str]:
    """Timestamped lines of what is seen (VLM captions; CLIP's guesses invite invented
    stories) and what is said, in time order."""
    items = [(f.time, f"[{clock(f.time)}] seen: {f.caption}") for f in frames if f.source == "vlm"]
    items += [(s.start, f"[{clock(s.start)}] said: {s.text}") for s in segments]
    return [line for _, line in sorted(items, key=lambda item: item[0])]


def representative(said: Sequence[str], top: int = 1) -> list[str]:
    """The sentences that share the most content words with the rest (extractive gist)."""
    counts = Counter(w for s in said for w in set(content_words(s)))
    scored = [(sum(counts[w] for w in set(content_words(s))), i) for i, s in enumerate(said)]
    best = sorted(scored, key=lambda si: -si[0])[:top]
    return [said[i] for _, i in sorted(best, key=lambda si: si[1])]


def names(sentence: str) -> list[str]:
    """Runs of capitalised words that do not open a sentence ("John Dashwood")."""
    found: list[str] = []
    run: list[str] = []
    previous = ""
    for token in sentence.split():
        bare = token.strip(".,;:!?\"'()")
        opens = not previous or (
            previous.endswith((".", "!", "?")) and previous.lower() not in TITLES
        )
        if bare[:1].isupper() and bare.isalpha() and not opens and bare.lower() not in STOPWORDS:
            run.append(bare)
        elif run:
            found.append(" ".join(run))
            run = []
        if token.lower() in TITLES:  # "Mr." is part of no keyword
            run = []
        previous = token
        if run and token != bare:  # punctuation ends a name
            found.append(" ".join(run))
            run = []
    if run:
        found.append(" ".join(run))
    return found


def keywords(said: Sequence[str], rarity: Counter, top: int = 3) -> list[str]:
    """The chapter's most telling words: frequent here, rare in the rest of the video; names
    (capitalised words inside a sentence, "John Dashwood" kept together) first."""
    counts: Counter = Counter()
    for sentence in said:
        counts.update(content_words(sentence))
        for name in names(sentence):
            counts[name] += 2
    score = {w: n / (1 + rarity[w.lower()]) for w, n in counts.items()}
    chosen: list[str] = []
    for word in sorted(score, key=lambda w: (-score[w], -len(w))):
        if not any(word.lower() in c.lower().split() or c.lower() in word.lower() for c in chosen):
            chosen.append(word)
        if len(chosen) == top:
            break
    return chosen


def fallback_title(
    index: int, frames: Sequence[KeyFrame], said: Sequence[str], rarity: Counter
) -> str:
    """Keywords of what is said, else the VLM's caption, else "Part N"."""
    words = keywords(said, rarity)
    if words:
        words = [w if w[:1].isupper() else w.capitalize() for w in words]
        return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]
    for f in frames:
        if f.source == "vlm" and f.caption:
            return title_case_start(first_sentence(f.caption, 6))
    return f"Part {index + 1}"


def fallback_summary(
    duration: float, chapters: Sequence[Chapter], said: Sequence[str], seen: Sequence[str]
) -> str:
    """What the video says in its own most representative sentences, and what it shows."""
    plural = "s" if len(chapters) != 1 else ""
    text = f"A {clock(duration)} video in {len(chapters)} chapter{plural}."
    best = representative(said, 3)
    if best:
        text += " It says: " + " ".join(f"\u201c{clip_words(s, 30)}\u201d" for s in best)
    if seen:
        text += " It shows " + "; ".join(dict.fromkeys(s.rstrip(".") for s in seen[:3])) + "."
    return text


class Summariser:
    """Chapters and summary for one video with one ``Writer`` (or none: extracts only)."""

    def __init__(self, writer: Writer | None, config: VideoConfig, rarity: Counter) -> None:
        self.writer = writer
        self.config = config
        self.rarity = rarity  # in how many chapters each word is said
        self.kept = 0  # LLM texts used
        self.rejected = 0  # LLM texts left out (unreadable or not about the video)
        self.mapped = 0
        self.described: list[str] = []  # VLM captions seen so far (the summary's vocabulary)
        self.summary_by_llm = False

    def _llm(
        self, user: str, max_new: int, vocab: set[str], need: int, share: float = 0.4, **kw: Any
    ) -> str:
        """The LLM's text if it is readable and grounded in ``vocab``, else ""."""
        text = self.writer.write(SYSTEM, user, max_new, **kw)
        text = text.removeprefix(kw.get("prefix", "")).strip().strip("\"'")
        if usable(text, max(1, need)) and grounded(text, vocab, need, share):
            self.kept += 1
            return text
        self.rejected += 1
        return ""

    def _fit(
        self, lines: list[str], header: str, ask: str, max_new: int, vocab: set[str]
    ) -> list[str]:
        w = self.writer
        budget = w.budget(SYSTEM, max_new, "Title:") - w.count(header + "\n\n" + ask) - 4
        if budget < 32:
            raise MMDemoError(f"the LLM's context ({w.limit} tokens) is too small for a summary")

        def condense(group: list[str]) -> list[str]:
            text = self._llm(
                "\n".join(group) + "\n\n" + MAP_ASK, self.config.chapter_tokens, vocab, 3
            )
            said = [line.split(": ", 1)[-1] for line in group]
            return [text] if text else [clip_words(s, 25) for s in representative(said, 2)]

        fitted, mapped = w.condense(lines, budget, condense)
        self.mapped += mapped
        return fitted

    def chapter(
        self, index: int, start: float, end: float, frames: list[KeyFrame], segments: list[Segment]
    ) -> Chapter:
        """Title and bullets of one chapter; the LLM is asked only when there is speech or a
        VLM caption to ground its words in."""
        said = [p for s in segments for p in sentences(s.text)]
        seen = [f.caption.removesuffix(" (CLIP)") for f in frames if f.caption]
        described = [f.caption for f in frames if f.source == "vlm"]
        self.described += described
        vocab = set(content_words(" ".join(said + described)))
        title, gist = "", ""
        if self.writer is not None and vocab:
            cfg = self.config
            header = HEADER.format(start=clock(start), end=clock(end))
            lines = self._fit(
                material(frames, segments), header, GIST_ASK, cfg.chapter_tokens, vocab
            )
            notes = header + "\n" + "\n".join(lines) + "\n\n"
            title = self._llm(
                notes + TITLE_ASK, TITLE_TOKENS, vocab, 1, prefix="Title:", one_line=True
            )
            gist = self._llm(notes + GIST_ASK, cfg.chapter_tokens, vocab, 2, one_line=True)
        title = title_case_start(clip_words(title, 8)).rstrip("…") if title else ""
        bullets = [first_sentence(gist, 30)] if gist else []
        for sentence in representative(said, 1 if gist else 2):
            bullets.append("Said: " + clip_words(sentence, 30))
        if seen:
            bullets.append("Seen: " + clip_words(seen[0], 20))
        title = title or fallback_title(index, frames, said, self.rarity)
        return Chapter(start, end, title, tuple(bullets))

    def summary(self, duration: float, chapters: list[Chapter], segments: list[Segment]) -> str:
        said = [p for s in segments for p in sentences(s.text)]
        text = ""
        vocab = set(content_words(" ".join(said + self.described)))
        if self.writer is not None and vocab:
            lines = [f"[{clock(c.start)}] {c.title}: " + " ".join(c.bullets) for c in chapters]
            header = f"The chapters of a {clock(duration)} video:"
            lines = self._fit(lines, header, SUMMARY_ASK, self.config.summary_tokens, vocab)
            user = header + "\n" + "\n".join(lines) + "\n\n" + SUMMARY_ASK
            text = self._llm(user, self.config.summary_tokens, vocab, 3)
            text = " ".join(sentences(text)[:3])
        self.summary_by_llm = bool(text)
        return text or fallback_summary(duration, chapters, said, self.described)


def summary_stage(
    duration: float,
    shots: Sequence[Shot],
    frames: Sequence[KeyFrame],
    segments: Sequence[Segment],
    speech: Sequence[tuple[float, float]],
    get_llm: Callable[[], Any],
    config: VideoConfig,
    stop: threading.Event | None = None,
) -> Generator[tuple[float, str], None, SummaryResult]:
    """Chapters (spans, titles, bullets) and the summary; yields (fraction, detail).
    ``speech``: where someone speaks (VAD spans), for chapter boundaries at pauses."""
    notes: list[str] = []
    writer = None
    try:
        writer = Writer(get_llm(), config.llm_context, stop)
    except MMDemoError as exc:
        notes.append(f"the text LLM is unavailable, so titles and summary are extracts: {exc}")
    talk = list(speech) or [(s.start, s.end) for s in segments]
    spans = chapter_spans(duration, shots, talk, config)
    rarity: Counter = Counter()
    for i, (start, end) in enumerate(spans):
        until = float("inf") if i == len(spans) - 1 else end
        rarity.update({w for s in inside(start, until, segments) for w in content_words(s.text)})
    work = Summariser(writer, config, rarity)
    chapters = []
    for i, (start, end) in enumerate(spans):
        check(stop)
        until = float("inf") if i == len(spans) - 1 else end
        ch_frames = frames_inside(start, until, frames)
        ch_segments = inside(start, until, segments)
        chapters.append(work.chapter(i, start, end, ch_frames, ch_segments))
        trim_free_memory()
        yield (i + 1) / (len(spans) + 1), f"chapter {i + 1} of {len(spans)}"
    summary = work.summary(duration, chapters, list(segments))
    yield 1.0, "summary written"
    if writer is not None:
        if work.rejected:
            notes.append(
                f"{work.rejected} of {work.kept + work.rejected} texts from the LLM were left out "
                "as unreadable or not about the video; extracts from the transcript stand in"
            )
        if not work.summary_by_llm:
            notes.append("the summary is an extract: the LLM's was left out or not written")
        if work.mapped:
            notes.append(
                f"the material was longer than the LLM's {writer.limit}-token context, so it "
                f"was condensed first ({work.mapped} map steps)"
            )
    return SummaryResult(
        chapters, summary, notes, writer.calls if writer else [], writer is not None
    )
