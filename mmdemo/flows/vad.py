"""Voice activity: where the speech is in a clip, and when a live speaker has finished.

Both use the Silero VAD ONNX model that faster-whisper ships (``faster_whisper.vad``): no
weights to fetch, ~1 ms per 32 ms window on a CPU core.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mmdemo.errors import BadInputError

SAMPLE_RATE = 16000
WINDOW = 512  # samples per VAD decision (32 ms), fixed by the Silero model
CONTEXT = 64  # samples of the previous window the model sees


@dataclass(frozen=True)
class VadConfig:
    """How speech is told apart from silence."""

    # probability above which a window is speech
    threshold: float = 0.5
    # silence that ends an utterance (live endpointing) or splits a clip into segments
    end_silence_ms: int = 600
    # speech shorter than this is a click or a cough, not an utterance
    min_speech_ms: int = 250
    # audio kept around each speech segment so words are not clipped
    pad_ms: int = 200
    # longest live utterance before it is cut and answered anyway
    max_utterance_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.threshold <= 0.95:
            raise BadInputError(f"VAD threshold {self.threshold} is outside 0.05..0.95")
        if self.end_silence_ms < 100 or self.min_speech_ms < 0 or self.pad_ms < 0:
            raise BadInputError("VAD durations must be positive (end silence at least 100 ms)")


def speech_spans(
    samples: Any, config: VadConfig = VadConfig(), max_segment_s: float = 30.0
) -> list[tuple[int, int]]:
    """(start, end) sample offsets of the speech in a 16 kHz clip; empty when none."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=config.threshold,
        min_speech_duration_ms=config.min_speech_ms,
        min_silence_duration_ms=config.end_silence_ms,
        speech_pad_ms=config.pad_ms,
        max_speech_duration_s=max_segment_s,
    )
    return [(s["start"], s["end"]) for s in get_speech_timestamps(samples, options)]


def speech_chunks(
    samples: Any, spans: list[tuple[int, int]], max_seconds: float = 30.0
) -> Iterator[Any]:
    """The speech of a clip, silences dropped, in pieces of at most ``max_seconds``
    (one Whisper window each), so any length is transcribed with bounded memory."""
    import numpy as np

    limit = int(max_seconds * SAMPLE_RATE)
    parts: list[Any] = []
    size = 0
    for start, end in spans:
        for s in range(start, end, limit):
            piece = samples[s : min(end, s + limit)]
            if size + len(piece) > limit and parts:
                yield np.concatenate(parts)
                parts, size = [], 0
            parts.append(piece)
            size += len(piece)
    if parts:
        yield np.concatenate(parts)


@dataclass(frozen=True)
class Endpoint:
    """What the endpointer noticed in the audio fed so far."""

    kind: str  # "speech_start" (someone began talking) | "utterance" (they finished)
    audio: Any = None  # for "utterance": the 16 kHz speech, padded
    # seconds of trailing silence the endpointer waited before it was sure
    hangover_s: float = 0.0
    forced: bool = False  # cut at ``max_utterance_s`` rather than at a pause


class Endpointer:
    """Live end-of-speech detection over a microphone stream (one per user).

    Feed 16 kHz float32 chunks of any size; get ``Endpoint`` events. The Silero state and
    the 64-sample context are carried from window to window exactly as
    ``faster_whisper.vad.SileroVADModel`` does within one call, so streaming decisions
    equal offline ones (that class has no way to carry state across calls).
    """

    def __init__(self, config: VadConfig = VadConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        import numpy as np

        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros((1, CONTEXT), np.float32)
        self._pending = np.zeros(0, np.float32)  # samples not yet a full window
        self._history: list[Any] = []  # windows kept before speech (for padding)
        self._utterance: list[Any] = []
        self._speech_windows = 0
        self._silent_windows = 0
        self.in_speech = False

    def _probability(self, window: Any) -> float:
        import numpy as np
        from faster_whisper.vad import get_vad_model

        session = get_vad_model().session
        inp = np.concatenate([self._context, window[None, :]], axis=1)
        out, self._h, self._c = session.run(None, {"input": inp, "h": self._h, "c": self._c})
        self._context = window[None, -CONTEXT:]
        return float(np.asarray(out).reshape(-1)[0])

    def feed(self, chunk: Any) -> list[Endpoint]:
        """Process a chunk; returns the events it completed (usually none)."""
        import numpy as np

        cfg = self.config
        ms_per_window = WINDOW * 1000 / SAMPLE_RATE
        pad_windows = max(1, int(cfg.pad_ms / ms_per_window))
        end_windows = max(1, math.ceil(cfg.end_silence_ms / ms_per_window))
        min_windows = max(1, math.ceil(cfg.min_speech_ms / ms_per_window))
        max_windows = int(cfg.max_utterance_s * 1000 / ms_per_window)
        events: list[Endpoint] = []
        data = np.concatenate([self._pending, np.asarray(chunk, np.float32).reshape(-1)])
        usable = len(data) // WINDOW * WINDOW
        self._pending = data[usable:]
        for i in range(0, usable, WINDOW):
            window = data[i : i + WINDOW]
            speech = self._probability(window) >= cfg.threshold
            if not self.in_speech:
                self._history = [*self._history, window][-pad_windows:]
                if speech:
                    self.in_speech = True
                    self._utterance = list(self._history)
                    self._speech_windows, self._silent_windows = 1, 0
                    events.append(Endpoint("speech_start"))
                continue
            self._utterance.append(window)
            if speech:
                self._speech_windows += 1
                self._silent_windows = 0
            else:
                self._silent_windows += 1
            forced = len(self._utterance) >= max_windows
            if self._silent_windows >= end_windows or forced:
                keep = len(self._utterance) - max(0, self._silent_windows - pad_windows)
                audio = np.concatenate(self._utterance[:keep])
                long_enough = self._speech_windows >= min_windows
                hangover = self._silent_windows * ms_per_window / 1000
                self.in_speech, self._utterance, self._history = False, [], []
                if long_enough:
                    events.append(Endpoint("utterance", audio, hangover, forced))
        return events
