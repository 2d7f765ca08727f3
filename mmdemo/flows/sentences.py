"""Sentence splitting of a growing answer, so speech starts before the answer is finished.

Written here rather than taken from a library: sentence splitters (nltk punkt, pysbd, hibari's
``split_sentences``) split finished text, while this one must decide on a buffer that grows a
token at a time, and must hand over the first words early (a clause is enough) to keep the
first audio fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# Sentence end: . ! ? … (plus closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"[.!?…]+[\"”’)\]]*\s+")
# Clause end: , ; : — followed by whitespace (used only for the first chunk).
_CLAUSE_END = re.compile(r"[,;:—]\s+")
# A period after these is not a sentence end.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "fig",
        "approx",
        "inc",
        "ltd",
        "co",
        "mt",
    ]
)
_MARKUP = re.compile(r"[*_`#>|~]+|\[(.*?)\]\(.*?\)")


def speakable(text: str) -> str:
    """Text without markdown marks and links (the TTS would read them out or choke)."""
    text = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    return re.sub(r"\s+", " ", text).strip()


class SentenceSplitter:
    """Feed text deltas, get complete sentences back as soon as they are complete."""

    def __init__(
        self, first_clause_words: int = 4, max_chars: int = 220, first_chunk_words: int = 0
    ) -> None:
        # the first chunk may end at a clause once it has this many words (0: never)
        self.first_clause_words = first_clause_words
        # the first chunk ends after this many words even with no punctuation yet, so the
        # first audio starts early (0: wait for a clause or sentence end)
        self.first_chunk_words = first_chunk_words
        # a chunk with no punctuation is cut at a space after this many characters
        self.max_chars = max_chars
        self._buffer = ""
        self._emitted = 0

    @property
    def pending(self) -> str:
        """Text fed but not yet released as a sentence."""
        return self._buffer

    def feed(self, delta: str) -> list[str]:
        self._buffer += delta
        out = []
        while (cut := self._cut()) is not None:
            piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
            if piece.strip():
                out.append(piece.strip())
                self._emitted += 1
        return out

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer.strip(), ""
        if rest:
            self._emitted += 1
            return [rest]
        return []

    def _cut(self) -> int | None:
        buf = self._buffer
        for m in _SENTENCE_END.finditer(buf):
            word = buf[: m.start()].rsplit(None, 1)[-1].lower() if buf[: m.start()].strip() else ""
            after = buf[m.end() : m.end() + 1]
            if word.rstrip(".") in _ABBREVIATIONS or (after and after.islower()):
                continue
            if len(word) == 1 and word.isalpha() and buf[m.start()] == ".":
                continue  # an initial: "J. K. Rowling"
            return m.end()
        if self._emitted == 0 and self.first_clause_words:
            for m in _CLAUSE_END.finditer(buf):
                if len(buf[: m.start()].split()) >= self.first_clause_words:
                    return m.end()
        if self._emitted == 0 and self.first_chunk_words:
            # a word is complete once a space follows it
            ends = [m.start() for m in re.finditer(r"\S(?=\s)", buf)]
            if len(ends) >= self.first_chunk_words:
                return ends[self.first_chunk_words - 1] + 1
        if len(buf) > self.max_chars:
            space = buf.rfind(" ", 0, self.max_chars)
            return space + 1 if space > 0 else self.max_chars
        return None


def split_stream(deltas: Iterable[str], splitter: SentenceSplitter | None = None) -> Iterator[str]:
    """Stage: text deltas in, sentences out (the last one when the deltas end)."""
    splitter = splitter or SentenceSplitter()
    for delta in deltas:
        yield from splitter.feed(delta)
    yield from splitter.flush()


def _normal(sentence: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", sentence.lower()).split())


def repeated_sentence(text: str) -> bool:
    """True when an answer says a sentence twice ("She's a queen. She's a queen."), counting
    a last sentence cut short that starts like an earlier one (3 words or more)."""
    parts = [_normal(p) for p in split_stream([text], SentenceSplitter(first_clause_words=0))]
    parts = [p for p in parts if p]
    for i, part in enumerate(parts):
        for earlier in parts[:i]:
            last = i == len(parts) - 1
            if part == earlier or (last and len(part.split()) >= 3 and earlier.startswith(part)):
                return True
    return False
