"""Word error rate, the ASR quality measure: word edits to turn the hypothesis into the
reference, over the reference's length, after Whisper's English text normalisation
(so "Mr." equals "mister" and punctuation does not count)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


@functools.lru_cache(maxsize=1)
def _normalizer() -> Any:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def normalize_words(text: str) -> list[str]:
    return _normalizer()(text).split()


@dataclass(frozen=True)
class WordErrors:
    edits: int
    words: int  # in the reference

    @property
    def rate(self) -> float:
        return self.edits / self.words if self.words else float(self.edits > 0)


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Edits and reference words, for summing over a corpus (corpus WER = sum / sum)."""
    import torchaudio.functional as AF

    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return WordErrors(int(AF.edit_distance(ref, hyp)), len(ref))


def word_error_rate(reference: str, hypothesis: str) -> float:
    return word_errors(reference, hypothesis).rate
