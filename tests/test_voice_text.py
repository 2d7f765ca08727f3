"""Sentences come out of a token stream as soon as they are complete; WER is Whisper-normalised."""

from __future__ import annotations

import pytest

from mmdemo.flows.sentences import SentenceSplitter, repeated_sentence, speakable, split_stream
from mmdemo.flows.wer import word_error_rate, word_errors


def tokens(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you? Fine!", ["Hello there.", "How are you?", "Fine!"]),
        (
            "Mr. Smith met Dr. Who at 5 p.m. today. Then they left.",
            ["Mr. Smith met Dr. Who at 5 p.m. today.", "Then they left."],
        ),
        ("J. K. Rowling wrote it. Yes.", ["J. K. Rowling wrote it.", "Yes."]),
        (
            "Well, the capital of France is Paris, a big city. It is old.",
            ["Well, the capital of France is Paris,", "a big city.", "It is old."],
        ),
        ('He said "stop." Then silence.', ['He said "stop."', "Then silence."]),
        ("no punctuation at all", ["no punctuation at all"]),
        ("", []),
    ],
)
def test_sentences_from_a_token_stream(text: str, expected: list[str]) -> None:
    assert list(split_stream(tokens(text))) == expected


def test_a_sentence_is_released_as_soon_as_the_next_begins() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("The first sentence is done.") == []
    assert splitter.feed(" The") == ["The first sentence is done."]
    assert splitter.feed(" second") == []
    assert splitter.flush() == ["The second"]


def test_the_first_words_are_spoken_before_any_punctuation() -> None:
    splitter = SentenceSplitter(first_chunk_words=4)
    assert splitter.feed("The capital of Fra") == []  # 'Fra' may still grow
    assert splitter.feed("nce is") == ["The capital of France"]
    assert splitter.feed(" Paris and it is old. It") == ["is Paris and it is old."]
    assert splitter.flush() == ["It"]
    assert list(split_stream(tokens("Yes. It is."), SentenceSplitter(first_chunk_words=4))) == [
        "Yes.",
        "It is.",
    ]


@pytest.mark.parametrize(
    ("answer", "repeats"),
    [
        ("She's a queen of clothes. She's a queen of clothes. She's a queen of", True),
        ("Paris! Paris.", True),
        ("I like it. I like it a lot.", False),
        ("Paris is the capital of France. It is a big city.", False),
        ("The sky is blue. The sky is", True),  # a cut-off repeat
        ("", False),
    ],
)
def test_repeated_sentences_are_noticed(answer: str, repeats: bool) -> None:
    assert repeated_sentence(answer) is repeats


def test_endless_text_is_cut_at_a_word_boundary() -> None:
    words = " ".join(f"word{i}" for i in range(200))
    pieces = list(split_stream(tokens(words), SentenceSplitter(max_chars=100)))
    assert all(len(p) <= 100 for p in pieces)
    assert " ".join(pieces) == words


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("**Bold** and _italic_ `code`", "Bold and italic code"),
        ("See [the docs](https://example.org) now.", "See the docs now."),
        ("# Title\n\n- item", "Title - item"),
        ("***", ""),
    ],
)
def test_markdown_is_not_read_out(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize(
    ("reference", "hypothesis", "rate"),
    [
        ("he was not an ill disposed young man", "He was not an ill-disposed young man.", 0.0),
        ("and mister john dashwood", "And Mr. John Dashwood", 0.0),
        ("the cat sat down", "the bat sat down", 0.25),
        ("the cat sat down", "the cat", 0.5),
        ("the cat", "the cat sat down", 1.0),
    ],
)
def test_word_error_rate(reference: str, hypothesis: str, rate: float) -> None:
    assert word_error_rate(reference, hypothesis) == pytest.approx(rate)


def test_corpus_word_errors_add_up() -> None:
    a, b = word_errors("a b c d", "a x c d"), word_errors("e f", "e f")
    assert (a.edits + b.edits, a.words + b.words) == (1, 6)
