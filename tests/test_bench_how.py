"""The How-it-works benchmark's helpers on hand-written inputs (the benchmark itself is run by
``python -m mmdemo bench how``, not here)."""

from __future__ import annotations

import numpy as np
import pytest

from mmdemo.bench.how import (
    Spoken,
    majority_accuracy,
    shots_above_baselines,
    span_frames,
    with_noise,
    word_key,
    word_pairs,
)


def test_word_spans_take_the_frames_centred_inside_them() -> None:
    # frame f covers samples [320 f, 320 f + 400): centres at 12.5 ms, 32.5 ms, 52.5 ms, ...
    assert list(span_frames(0.0, 0.05, 100)) == [0, 1]
    assert list(span_frames(0.0125, 0.0325, 100)) == [0]  # end excluded
    assert list(span_frames(0.02, 0.03, 100)) == []  # no centre between 20 and 30 ms
    assert list(span_frames(1.0, 3.0, 60)) == list(range(50, 60))  # cut at the last frame


def test_whisper_words_become_keys() -> None:
    assert word_key(" Amiable,") == "amiable"
    assert word_key("-disposed.") == "disposed"
    assert word_key(" Mr.") == "mr"


def test_word_pairs_pair_repeats_and_a_different_word_of_similar_length() -> None:
    might0 = Spoken(0, "might", 4.66, 4.94)
    made = Spoken(1, "made", 3.52, 3.90)  # 0.38 s
    might1 = Spoken(1, "might", 2.88, 3.10)  # 0.22 s
    been = Spoken(2, "been", 1.22, 1.40)  # 0.18 s: the closest in length to might1
    might2 = Spoken(2, "might", 0.50, 0.74)  # 0.24 s
    same, other = word_pairs([might0, made, might1, been, might2])
    assert same == [(might0, might1), (might0, might2), (might1, might2)]
    assert other == [(might0, been), (might0, been), (might1, been)]
    assert word_pairs([might0, made]) == ([], [])


def test_majority_baseline_counts_the_queries_left_after_the_shots() -> None:
    assert majority_accuracy({"a": 10, "b": 5}, 0) == pytest.approx(10 / 15)
    assert majority_accuracy({"a": 10, "b": 5}, 2) == pytest.approx(8 / 11)
    assert majority_accuracy({"a": 6, "b": 6, "c": 6}, 5) == pytest.approx(1 / 3)


def test_few_shot_counts_only_when_it_beats_every_baseline() -> None:
    per_class = {"a": 10, "b": 5}  # chance 50%, majority 66.7% at 0 shots, 72.7% at 2
    results = [
        {"shots": 1, "accuracy": 0.68, "zero_shot_accuracy": 0.5},  # below majority (9/13)
        {"shots": 2, "accuracy": 0.80, "zero_shot_accuracy": 0.9},  # below zero-shot
        {"shots": 3, "accuracy": 0.80, "zero_shot_accuracy": 0.6},  # above all (7/9 = 77.8%)
        {"shots": 5, "accuracy": None, "zero_shot_accuracy": None},  # skipped
        {"shots": 4, "accuracy": 0.95, "zero_shot_accuracy": None},  # no zero-shot given
    ]
    assert shots_above_baselines(results, per_class) == [3, 4]


def test_same_speech_again_is_shifted_and_noisy_at_the_asked_level() -> None:
    t = np.arange(16000, dtype=np.float32) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    again = with_noise(speech, 0.010, 30.0, seed=0)
    assert again.dtype == np.float32 and len(again) == 16000 - 160
    noise = again - speech[160:]
    snr = 10 * np.log10(np.mean(speech[160:] ** 2) / np.mean(noise.astype(np.float64) ** 2))
    assert snr == pytest.approx(30.0, abs=0.5)
    assert np.array_equal(again, with_noise(speech, 0.010, 30.0, seed=0))
