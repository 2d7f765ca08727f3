"""Plain-text helpers for the video stages: is a model's output readable, sentences, the
content words of a text (for retrieval and for measuring whether a summary uses the speech)."""

from __future__ import annotations

import re

_STOP = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just let me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves also may might must shall one two much many well still yet even like get got
    said says say video frame shows showing looks seen part chapter"""
STOPWORDS = frozenset(_STOP.split())
WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")


def words(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def content_words(text: str) -> list[str]:
    """Lower-case words that carry meaning (no stop words, at least 3 letters)."""
    return [w for w in words(text) if len(w) >= 3 and w not in STOPWORDS]


def stem(word: str) -> str:
    """A crude English stem, enough to match "considering" with "consider" or "built" not."""
    for suffix in ("ing", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def stems(text: str) -> set[str]:
    return {stem(w) for w in content_words(text)}


def usable(text: str, min_words: int = 2) -> bool:
    """Whether a model's output reads as text: enough real words, not one word repeated,
    mostly letters (random-weight models produce runs of symbols or a single token)."""
    found = words(text)
    if len([w for w in found if len(w) >= 2]) < min_words:
        return False
    if len(found) >= 4 and len(set(found)) < 0.3 * len(found):
        return False
    letters = sum(c.isalpha() for c in text)
    return letters >= 0.5 * len(text.replace(" ", ""))


ABBREVIATIONS = ("mr.", "mrs.", "ms.", "dr.", "st.", "prof.", "e.g.", "i.e.", "vs.", "etc.", "no.")


def sentences(text: str) -> list[str]:
    """Sentences of a text (not broken after "Mr." and the like)."""
    out: list[str] = []
    for part in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        if out and out[-1].lower().endswith(ABBREVIATIONS):
            out[-1] += " " + part
        elif part.strip():
            out.append(part.strip())
    return out


def first_sentence(text: str, max_words: int = 30) -> str:
    found = sentences(text)
    first = found[0] if found else ""
    tokens = first.split()
    return " ".join(tokens[:max_words]) + ("…" if len(tokens) > max_words else "")


def clip_words(text: str, max_words: int) -> str:
    tokens = text.split()
    return text if len(tokens) <= max_words else " ".join(tokens[:max_words]) + "…"


def title_case_start(text: str) -> str:
    text = text.strip().strip("\"'*#:- ").rstrip(".")
    return text[:1].upper() + text[1:] if text else text


def grounded(text: str, vocabulary: set[str], need: int, share: float = 0.4) -> bool:
    """Whether ``text`` uses at least ``need`` content words of the video's own, and they
    are at least ``share`` of its content words (the rest is what the model made up)."""
    words = stems(text)
    known = words & {stem(w) for w in vocabulary}
    return len(known) >= need and len(known) >= share * len(words)
