"""How it works: what the tab's audio-unit and few-shot views give on real inputs.

Audio units: the tab's path (HuBERT-Base, trained weights when torch hub's cache holds them,
else seeded random ones; the k-means codebook the tab fits once and shares; repeats merged) on
the LibriVox clips of Debian's pocketsphinx-testdata: units and compute per second of audio,
and whether the same speech maps to the same units (the same clip again, shifted 10 ms with
noise added; the same word said twice, located by Whisper's word times) against different
speech. Few-shot: the flow's nearest-centroid classifier on frozen CLIP embeddings at 1, 2 and
5 shots beside CLIP zero-shot on the same images, chance and the majority class, on the
built-in shapes and the hand-emoji pictures.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table

K = 50  # the tab's default number of units
LAYER = 6  # the flow's default layer
SEED = 0
STRIDE, WINDOW, RATE = 320, 400, 16000  # HuBERT frames: 20 ms apart, 25 ms long
SHIFT_S, SNR_DB = 0.010, 30.0  # "the same speech again": half a frame later, noise at 30 dB
MIN_LETTERS = 4  # words worth comparing: "amiable", "might"; not "a" or "to"
SHOTS = (1, 2, 5)
# emoji labels as words a zero-shot prompt can use ("R" is the crossed-fingers emoji)
EMOJI_NAMES = {"R": "crossed fingers"}


@dataclass(frozen=True)
class Spoken:
    clip: int  # index into the clips
    word: str  # lower case, letters only
    start: float  # seconds
    end: float


# -- pure helpers ------------------------------------------------------------------------------
def span_frames(start: float, end: float, frames: int) -> range:
    """The encoder frames whose window centre lies in [start, end) seconds."""
    centre = WINDOW / 2  # frame f's window centre is at sample f * STRIDE + centre
    first = max(0, math.ceil((start * RATE - centre) / STRIDE))
    last = min(frames, math.ceil((end * RATE - centre) / STRIDE))
    return range(first, max(first, last))


def word_key(word: str) -> str:
    """Whisper's word as a comparable key: lower case, letters only (" Amiable," -> amiable)."""
    return re.sub(r"[^a-z]", "", word.lower())


def word_pairs(words: Sequence[Spoken]) -> tuple[list[tuple[Spoken, Spoken]], list[tuple]]:
    """(same-word pairs: every two occurrences of a word; different-word pairs: the first of
    each same pair with the other word whose duration is closest to the second's), in order."""
    same = [(a, b) for i, a in enumerate(words) for b in words[i + 1 :] if a.word == b.word]
    other = []
    for a, b in same:
        others = [w for w in words if w.word != a.word]
        if others:
            length = b.end - b.start
            other.append((a, min(others, key=lambda w: abs((w.end - w.start) - length))))
    return same, other


def majority_accuracy(per_class: dict[str, int], shots: int) -> float:
    """Accuracy of always answering the largest class on the queries of a ``shots``-shot
    episode (each class's images less its ``shots`` support images)."""
    left = [n - shots for n in per_class.values()]
    return max(left) / sum(left)


def with_noise(samples: Any, shift_s: float, snr_db: float, seed: int) -> Any:
    """``samples`` started ``shift_s`` later, with white noise ``snr_db`` below its power."""
    import numpy as np

    cut = np.asarray(samples, np.float32)[round(shift_s * RATE) :]
    power = float(np.mean(cut.astype(np.float64) ** 2))
    noise = np.random.default_rng(seed).standard_normal(len(cut)) * np.sqrt(
        power / 10 ** (snr_db / 10)
    )
    return (cut + noise).astype(np.float32)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


# -- audio units ---------------------------------------------------------------------------------
def _spoken(clips: Sequence[Any]) -> tuple[list[Spoken], str]:
    """Confident words of at least MIN_LETTERS letters, timed by the app's Whisper (or none,
    with the reason)."""
    from mmdemo.config import Settings
    from mmdemo.errors import MMDemoError
    from mmdemo.models.manager import ModelManager

    try:
        manager = ModelManager(Settings.load(profile="cpu", device="cpu"))
        asr = manager.get("asr")
        found = [asr.transcribe(c.samples, "en", words=True).words for c in clips]
    except MMDemoError as exc:
        return [], str(exc)
    words = [
        Spoken(i, word_key(w), float(s), float(e))
        for i, timed in enumerate(found)
        for s, e, w in timed
        if len(word_key(w)) >= MIN_LETTERS
    ]
    model_id = manager.model_id("asr")
    manager.unload_all()
    return words, model_id


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def audio_rows(table: Table, paths: Sequence[Path], repeat: int) -> list[str]:
    """Rows for the audio-unit path; returns notes."""
    from mmdemo.config import Settings
    from mmdemo.flows.audio import read_audio
    from mmdemo.flows.how import audio_units as au
    from mmdemo.flows.how.service import HowItWorks
    from mmdemo.models.manager import ModelManager

    clips = [read_audio(p) for p in paths]
    seconds = sum(c.seconds for c in clips)
    name = f"{len(clips)} LibriVox clips, {seconds:.1f} s"
    # 1. the tab's own call, on a fresh data folder: the first call fits the shared codebook
    # (on every LibriVox clip), the others find it in memory
    with tempfile.TemporaryDirectory(prefix="mmdemo-bench-how-units-") as home:
        settings = Settings(profile="cpu", home=Path(home), device="cpu")
        how = HowItWorks(settings, ModelManager(settings))
        first = _timed(how.audio_units, str(paths[0]), K, SEED)[1]
        calls, units, frames = [], 0, 0
        for path in paths:
            times = []
            for _ in range(repeat):
                found, took = _timed(how.audio_units, str(path), K, SEED)
                times.append(took)
            calls.append(statistics.median(times))
            units, frames = units + len(found["units"]), frames + found["frames"]
        encoder = au.load_encoder("hubert-base", SEED)
        layer = min(LAYER, encoder.layers)
        book = how.codebooks.get(encoder, layer, K, SEED)  # the one the calls used
    timed = [_timed(au.clip_frames, encoder, c.samples, layer) for c in clips]
    feats, forward = [f for f, _ in timed], [t for _, t in timed]
    table.add(
        f"audio units: {name}",
        f"units per second of audio (K={K}, repeats merged)",
        f"{units / seconds:.1f}",
        f"{frames / seconds:.1f} frames per second before merging",
    )
    table.add(
        f"audio units: {name}",
        "compute per second of audio (the tab's call, codebook in memory: encoder built, "
        "features, nearest centroid)",
        f"{sum(calls) / seconds:.2f} s (RTF {sum(calls) / seconds:.2f})",
        f"encoder forward alone: {sum(forward) / seconds:.2f} s; the first call, which also "
        f"fits the codebook on {book.source}: {first:.1f} s",
    )

    # 2. the same speech against different speech, in the shared codebook's unit ids
    def assign(f: Any) -> list[int]:
        return [int(u) for u in au.assign(f, book.centroids)]

    raw = [assign(f) for f in feats]
    whole = [au.merge_repeats(r) for r in raw]
    noisy = [with_noise(c.samples, SHIFT_S, SNR_DB, i) for i, c in enumerate(clips)]
    again = [au.merge_repeats(assign(au.clip_frames(encoder, n, layer))) for n in noisy]
    same = [au.unit_edit_distance(a, b) for a, b in zip(whole, again, strict=True)]
    other = []
    for i in range(len(clips)):  # each clip against the next one, both cut to the shorter
        j = (i + 1) % len(clips)
        n = min(len(raw[i]), len(raw[j]))
        cut = [au.merge_repeats(r[:n]) for r in (raw[i], raw[j])]
        other.append(au.unit_edit_distance(*cut))
    table.add(
        f"audio units: {name}",
        f"same clip again, {SHIFT_S * 1000:.0f} ms later + noise at {SNR_DB:.0f} dB: unit edit "
        f"distance (normalised), identical",
        f"{_mean(same):.2f}, {sum(d == 0 for d in same)}/{len(same)} identical",
        f"a different clip (same length): {_mean(other):.2f}",
    )
    notes = [
        (
            f"Audio: the encoder is torchaudio's HuBERT-Base with its trained weights "
            f"(`{encoder.weights}`, found in torch hub's cache), as the tab loads it."
            if encoder.trained
            else "Audio: the encoder is torchaudio's HuBERT-Base architecture (95M parameters) "
            "with seeded random weights, as the tab builds it when HUBERT_BASE's weights are "
            "not in torch hub's cache (nothing can be downloaded here): the units mean "
            "nothing, and these rows show the pipeline's rates and how stable a random "
            "encoder's units are. With trained weights the same code gives units that follow "
            "phones (not measurable here)."
        ),
        f"Units per second and compute: the tab's own call per clip (layer {layer}, K={K}, "
        f"seed {SEED}), median of {repeat} run(s) per clip, after a first call that fits the "
        f"tab's shared k-means codebook on {book.source}. Every row uses that one codebook, "
        "so a unit id means the same in every clip; it was fitted on these very clips. "
        "Edit distances: Levenshtein over the merged unit sequences, divided by the longer "
        "one's length (0: the same units).",
    ]
    words, asr = _spoken(clips)
    pairs, others = word_pairs(words)
    if not pairs:
        table.add(f"audio units: {name}", "same word said twice", "n/a", asr or "no repeated word")
        return notes

    def units_of(w: Spoken) -> list[int]:
        span = span_frames(w.start, w.end, len(raw[w.clip]))
        return au.merge_repeats([raw[w.clip][f] for f in span])

    said = [au.unit_edit_distance(units_of(a), units_of(b)) for a, b in pairs]
    unlike = [au.unit_edit_distance(units_of(a), units_of(b)) for a, b in others]
    repeated = sorted({a.word for a, _ in pairs})
    table.add(
        f"audio units: {name}",
        f"same word said twice ({len(pairs)} pairs: {', '.join(repeated)}): unit edit distance "
        "(normalised), identical",
        f"{_mean(said):.2f}, {sum(d == 0 for d in said)}/{len(said)} identical",
        f"different words of similar length: {_mean(unlike):.2f}",
    )
    notes.append(
        f"Words located by the app's ASR (`{asr}`, word timestamps; words of {MIN_LETTERS}+ "
        "letters), so spans are approximate (tens of ms) and a span may take in a piece of the "
        "next word. Different-word baseline: the first occurrence of each pair against the other "
        "word closest in duration to the second occurrence."
    )
    return notes


# -- few-shot ------------------------------------------------------------------------------------
def _write_classes(root: Path, images: Sequence[Any], labels: Sequence[str]) -> Path:
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:04d}.png")
    return root


def emoji_pictures(quick: bool) -> tuple[list[Any], list[str]]:
    """One picture per labelled source emoji (set, code point, skin tone) of the gesture
    benchmark, drawn as its ``samples`` draws them, source i taking the i-th point of its
    render grid (size, tilt, background) in turn; the 'none' shapes are left out."""
    import itertools

    from PIL import Image

    from mmdemo.bench import emoji_hands as grid
    from mmdemo.flows.gestures.emoji import compose, emoji_root, load, photos, sources

    root = emoji_root()
    backdrops = photos(("coffee", "rocket", "astronaut"))
    points = list(
        itertools.product(grid.QUICK_SIZES, grid.QUICK_TILTS, grid.QUICK_BACKGROUNDS)
        if quick
        else itertools.product(grid.SIZES, grid.TILTS, grid.BACKGROUNDS)
    )
    images, labels = [], []
    for i, source in enumerate(s for s in sources() if s.label != "none"):
        src = load(root, source)
        if src is None:
            continue
        k = i % len(points)
        size, tilt, ground = points[k]
        hand = src.resize((size, size), Image.LANCZOS)
        if tilt:
            hand = hand.rotate(tilt, Image.BICUBIC, expand=True)
        images.append(compose(hand, ground, backdrops[k % len(backdrops)], k))
        labels.append(EMOJI_NAMES.get(source.label, source.label.replace("_", " ")))
    return images, labels


def shots_above_baselines(results: Sequence[dict], per_class: dict[str, int]) -> list[int]:
    """Shot counts whose few-shot accuracy beats chance, the majority class and zero-shot on
    the same queries (entries of the flow's ``results``; skipped ones never count)."""
    chance = 1 / len(per_class)
    return [
        r["shots"]
        for r in results
        if r["accuracy"] is not None
        and r["accuracy"] > max(chance, majority_accuracy(per_class, r["shots"]))
        and r["accuracy"] > (r["zero_shot_accuracy"] or 0.0)
    ]


def fewshot_rows(
    table: Table, sets: dict[str, Path], clips: Sequence[str], home: Path, episodes: int
) -> list[str]:
    """Rows for each labelled set and CLIP; returns what beat its baselines, in words."""
    from mmdemo.config import Settings
    from mmdemo.flows.how.service import HowItWorks
    from mmdemo.models.manager import ModelManager
    from mmdemo.models.tiny import build_all

    verdicts = []
    for clip in clips:
        settings = Settings(profile="tiny", home=home, device="cpu", clip=clip)
        if clip.startswith("tiny:"):
            build_all(settings.models_dir, ("clip",))
        manager = ModelManager(settings)
        how = HowItWorks(settings, manager)
        for data_name, root in sets.items():
            data = how.few_shot(folder=str(root), shots=list(SHOTS), episodes=episodes, seed=SEED)
            per_class = data["per_class"]
            case = (
                f"few-shot: {data_name}, {data['images']} images, {len(per_class)} classes; "
                f"CLIP `{data['model_id']}`"
                + (" (random weights)" if data["random_weights"] else "")
            )
            for r in data["results"]:
                if r["accuracy"] is None:
                    table.add(case, f"{r['shots']}-shot nearest centroid", "skipped", r["skipped"])
                    continue
                table.add(
                    case,
                    f"{r['shots']}-shot nearest centroid ({r['episodes']} episodes, "
                    f"{r['queries']} queries each)",
                    _pct(r["accuracy"]),
                    f"zero-shot on the same queries {_pct(r['zero_shot_accuracy'])} · chance "
                    f"{_pct(data['chance'])} · majority {_pct(majority_accuracy(per_class, r['shots']))}",
                )
            table.add(
                case,
                f'zero-shot, every image ("{data["prompt"]}")',
                _pct(data["zero_shot_all"]),
                f"chance {_pct(data['chance'])} · majority {_pct(majority_accuracy(per_class, 0))}",
            )
            above = shots_above_baselines(data["results"], per_class)
            verdicts.append(
                f"{data_name} with `{clip}`: "
                + (", ".join(f"{k}-shot" for k in above) if above else "no shot count")
            )
        manager.unload_all()
    return verdicts


def run(quick: bool = False) -> Table:
    from mmdemo.bench.voice import librivox_clips
    from mmdemo.errors import MMDemoError
    from mmdemo.flows.how.samples import sample_shapes

    load_before = os.getloadavg()[0]
    table = Table(
        "how",
        "How it works: audio units and few-shot vs zero-shot",
        ["case", "measure", "result", "baseline (same run)"],
    )
    paths = [p for p, _ in librivox_clips()]
    # quick: the two clips that share words ("might have been made", "amiable")
    repeat = 1 if quick else 3
    notes = audio_rows(table, paths[3:] if quick else paths, repeat)
    per_class, episodes = (8, 5) if quick else (20, 20)
    clips = ("tiny:clip",) if quick else ("tiny:clip", "ViT-B-32")
    with tempfile.TemporaryDirectory(prefix="mmdemo-bench-how-") as tmp:
        root = Path(tmp)
        sets = {"built-in shapes": _write_classes(root / "shapes", *sample_shapes(per_class, SEED))}
        try:
            sets["hand emoji"] = _write_classes(root / "emoji", *emoji_pictures(quick))
        except MMDemoError as exc:
            notes.append(f"Hand emoji left out: {exc}")
        verdicts = fewshot_rows(table, sets, clips, root / "home", episodes)
    table.notes += [
        *notes,
        "Few-shot: the tab's `few_shot` on a folder with one subfolder per class. Built-in "
        f"shapes: the fine-tuning studio's seeded drawings (circle, square, triangle in random "
        f"colours), {per_class} per class. Hand emoji: Twemoji and Noto hand emoji in 5 skin "
        "tones (npm emoji-datasource-*), one picture per source emoji on the gesture "
        "benchmark's render grid, the 'none' shapes left out; classes are unbalanced, hence "
        "the majority row. Chance = 1/classes; majority = always the largest class, on the "
        "same queries.",
        f"CLIP ({', '.join(f'`{c}`' for c in clips)}) has random weights here (no CLIP "
        "weights are reachable offline): `tiny:clip` is the tiny profile's, `ViT-B-32` the "
        "real architecture randomly initialised, as the app builds it offline. A random "
        "text tower knows no words, so zero-shot can only match chance or, by sending most "
        "images to one class, the majority class. Few-shot uses the image features alone, "
        "with no training: with trained weights this is how a frozen encoder and a few labels "
        "make a classifier; with random ones it shows only what random features separate.",
        "Few-shot above chance, the majority class and zero-shot on the same queries, in this "
        "run: " + "; ".join(verdicts) + ".",
        f"Measured on a 2-core machine shared with other jobs (load average {load_before:.1f} at "
        f"the start, {os.getloadavg()[0]:.1f} at the end); times vary with its load.",
    ]
    return table
