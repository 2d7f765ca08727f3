"""Stage 3: the sound track -> timestamped transcript.

PyAV decodes and resamples the audio to 16 kHz mono as a stream; it is handled in blocks of
about a minute, cut at the quietest moment near the block's end so no word is split. Per
block: digital silence is skipped, Silero VAD finds the speech, the speech is packed into
30 s pieces for the ASR (embedded faster-whisper gives segment timestamps), and every
timestamp is mapped back to the video's clock. Music and noise give no words: noted, not
transcribed into nonsense.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.flows.audio import SILENCE_PEAK
from mmdemo.flows.vad import VadConfig, speech_spans
from mmdemo.flows.video.types import Segment, VideoInfo, check, clock
from mmdemo.heap import trim_free_memory

RATE = 16000
PIECE_S = 30.0  # one Whisper window
QUIET_WINDOW = RATE // 10  # 100 ms
CUT_SEARCH_S = 3.0
SPLIT_PAUSE_S = 0.6  # a pause this long between words starts a new transcript segment
LONG_PART_S = 12.0  # a segment this long ends at the next full stop
# bracketed tags and music notes Whisper writes for non-speech: "[Music]", "(applause)", "♪"
NON_SPEECH = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫]")


@dataclass
class SpeechStats:
    audio_s: float = 0.0  # sound decoded
    speech_s: float = 0.0  # of which the VAD called speech
    asr_s: float = 0.0  # ASR compute time
    blocks: int = 0
    silent_blocks: int = 0
    no_speech_s: float = 0.0  # sound in which no words were recognised (music, noise)
    dropped: int = 0  # ASR segments that were only tags like [Music]
    damaged: str = ""


@dataclass
class SpeechResult:
    segments: list[Segment]
    notes: list[str] = field(default_factory=list)
    stats: SpeechStats = field(default_factory=SpeechStats)
    # where the VAD heard speech, on the video's clock (chapters look for pauses between)
    spans: list[tuple[float, float]] = field(default_factory=list)


def quiet_cut(samples: np.ndarray, target: int) -> int:
    """Index near ``target`` at the quietest 100 ms (a pause between words)."""
    lo = max(0, target - int(CUT_SEARCH_S * RATE))
    hi = min(len(samples), target + int(CUT_SEARCH_S * RATE))
    n = (hi - lo) // QUIET_WINDOW
    if n < 2:
        return min(len(samples), target)
    windows = samples[lo : lo + n * QUIET_WINDOW].reshape(n, QUIET_WINDOW)
    quietest = int(np.argmin(np.sqrt(np.mean(windows**2, axis=1))))
    return lo + quietest * QUIET_WINDOW + QUIET_WINDOW // 2


def audio_blocks(
    path: str | Path,
    info: VideoInfo,
    block_s: float,
    stop: threading.Event | None = None,
    stats: SpeechStats | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """(start time, 16 kHz mono float32) blocks of about ``block_s`` seconds, in order."""
    import av

    stats = stats if stats is not None else SpeechStats()
    target = int(block_s * RATE)
    pending: list[np.ndarray] = []
    pending_len = 0
    start: float | None = None
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        try:
            for frame in container.decode(stream):
                check(stop)
                if start is None:
                    start = max(0.0, frame.time - info.start) if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    pending.append(out.to_ndarray().reshape(-1))
                    pending_len += pending[-1].shape[0]
                if pending_len >= target + CUT_SEARCH_S * RATE:
                    data = np.concatenate(pending)
                    cut = quiet_cut(data, target)
                    stats.audio_s += cut / RATE
                    yield start, data[:cut]
                    start += cut / RATE
                    pending, pending_len = [data[cut:]], len(data) - cut
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            stats.damaged = str(exc).split(";")[0][:120] or type(exc).__name__
    if pending and sum(len(p) for p in pending):
        data = np.concatenate(pending)
        stats.audio_s += len(data) / RATE
        yield start or 0.0, data


def pack(spans: list[tuple[int, int]]) -> Iterator[list[tuple[int, int, int]]]:
    """Speech spans packed into pieces of at most 30 s; each piece is a list of
    (offset in the piece, offset in the block, length) in samples."""
    limit = int(PIECE_S * RATE)
    piece: list[tuple[int, int, int]] = []
    size = 0
    for s, e in spans:
        for a in range(s, e, limit):
            n = min(e, a + limit) - a
            if piece and size + n > limit:
                yield piece
                piece, size = [], 0
            piece.append((size, a, n))
            size += n
    if piece:
        yield piece


def word_times(
    piece: list[tuple[int, int, int]], start: float, end: float, new_sentence: bool = False
) -> tuple[float, float]:
    """A word's (start, end) in block seconds, both inside one span: the one that holds the
    word's middle, or, for the first word of a sentence that straddles a join, the later one
    (word times straddle the joins of the packed spans a little)."""
    start, end = float(start), float(end)
    mid = (start + end) / 2 * RATE
    index = max((i for i, p in enumerate(piece) if mid >= p[0]), default=0)
    if new_sentence and index + 1 < len(piece) and start * RATE < piece[index + 1][0] < end * RATE:
        index += 1
    offset, origin, length = piece[index]

    def place(x: float) -> float:
        return float(origin + min(max(x * RATE - offset, 0), length)) / RATE

    return place(start), place(end)


def to_block_time(piece: list[tuple[int, int, int]], seconds: float, end: bool = False) -> float:
    """A time in the packed piece -> seconds in the block (silences put back). At a join of
    two spans, a start maps to the later span and an ``end`` to the earlier one."""
    x = float(seconds) * RATE
    for offset, origin, length in reversed(piece):
        if x > offset or (x == offset and not end) or offset == 0:
            return float(origin + min(max(x - offset, 0), length)) / RATE
    return float(piece[0][1]) / RATE


def timed_parts(
    piece: list[tuple[int, int, int]], result: Any, seconds: float
) -> Iterator[tuple[float, float, str]]:
    """(start, end, text) on the block's clock. With word times, a new part starts at every
    pause of ``SPLIT_PAUSE_S`` (the packing removed it, the words show it) and after a
    sentence once a part is long; else Whisper's segments, or one part for the piece."""
    if result.words:
        part: list[tuple[float, float, str]] = []
        for s, e, word in result.words:
            a, b = word_times(piece, s, max(s, e), not part or _ends(part[-1][2]))
            long = part and part[-1][1] - part[0][0] > LONG_PART_S
            if part and (a - part[-1][1] >= SPLIT_PAUSE_S or (long and _ends(part[-1][2]))):
                yield part[0][0], part[-1][1], "".join(w for _, _, w in part).strip()
                part = []
            part.append((a, b, word))
        if part:
            yield part[0][0], part[-1][1], "".join(w for _, _, w in part).strip()
        return
    for s, e, text in result.segments or ((0.0, seconds, result.text),):
        yield to_block_time(piece, s), to_block_time(piece, max(s, e), end=True), text


def _ends(word: str) -> bool:
    return word.rstrip().endswith((".", "?", "!"))


def words_only(text: str) -> str:
    """The text without tags like [Music] or (applause); '' when nothing speakable is left."""
    cleaned = " ".join(NON_SPEECH.sub(" ", text).split())
    return cleaned if re.search(r"[A-Za-z0-9]", cleaned) else ""


def transcribe_block(
    get_asr: Callable[[], Any],
    start: float,
    samples: np.ndarray,
    vad: VadConfig,
    stats: SpeechStats,
    heard_at: list[tuple[float, float]] | None = None,
) -> list[Segment]:
    """Segments of one block, on the video's clock (speech spans go to ``heard_at``)."""
    stats.blocks += 1
    if len(samples) == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
        stats.silent_blocks += 1
        return []
    spans = speech_spans(samples, vad)
    if not spans:
        stats.no_speech_s += len(samples) / RATE
        return []
    if heard_at is not None:
        heard_at += [(round(start + a / RATE, 2), round(start + b / RATE, 2)) for a, b in spans]
    asr = get_asr()
    segments: list[Segment] = []
    for piece in pack(spans):
        audio = np.concatenate([samples[a : a + n] for _, a, n in piece])
        stats.speech_s += len(audio) / RATE
        result = asr.transcribe(audio, words=True)
        stats.asr_s += result.seconds
        found = 0
        for a, b, text in timed_parts(piece, result, len(audio) / RATE):
            words = words_only(text)
            if not words:
                stats.dropped += 1
                continue
            found += 1
            segments.append(Segment(round(start + a, 2), round(start + max(a, b), 2), words))
        if not found:
            stats.no_speech_s += len(audio) / RATE
    return segments


def speech_stage(
    path: str | Path,
    info: VideoInfo,
    get_asr: Callable[[], Any],
    block_s: float = 60.0,
    vad: VadConfig | None = None,
    stop: threading.Event | None = None,
) -> Generator[tuple[float, str], None, SpeechResult]:
    """Transcribe the sound track; yields (fraction, detail). ``get_asr`` is called only
    when there is speech, so a silent or music-only video never loads the ASR."""
    vad = vad or VadConfig(end_silence_ms=500, pad_ms=150)
    stats = SpeechStats()
    segments: list[Segment] = []
    spans: list[tuple[float, float]] = []
    for start, samples in audio_blocks(path, info, block_s, stop, stats):
        check(stop)
        segments += transcribe_block(get_asr, start, samples, vad, stats, spans)
        end = start + len(samples) / RATE
        del samples
        trim_free_memory()
        if info.duration > 0:
            yield min(1.0, end / info.duration), f"{clock(end)} heard, {len(segments)} segments"
    return SpeechResult(segments, speech_notes(stats, bool(segments), info), stats, spans)


def speech_notes(stats: SpeechStats, heard: bool, info: VideoInfo) -> list[str]:
    notes = []
    if stats.audio_s == 0:
        notes.append("the sound track holds no audio that could be decoded")
    elif stats.silent_blocks == stats.blocks:
        notes.append("the sound track is silent: the summary draws on the pictures only")
    elif not heard:
        notes.append(
            "the sound track has sound but no speech was recognised in it (music or noise?): "
            "the summary draws on the pictures only"
        )
    elif stats.no_speech_s >= 10:
        notes.append(
            f"{clock(stats.no_speech_s)} of sound without recognisable speech (music or noise) "
            "was left out of the transcript"
        )
    if stats.damaged:
        notes.append(
            f"the sound track is damaged at {clock(stats.audio_s)} ({stats.damaged}): what "
            "follows was skipped"
        )
    elif info.duration > 0 and 0 < stats.audio_s < info.duration - 5:
        notes.append(
            f"the sound track ends at {clock(stats.audio_s)}, before the end of the video "
            f"({clock(info.duration)})"
        )
    return notes
