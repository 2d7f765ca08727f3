"""Voice activity: where the speech is in a clip, and when a live speaker has finished.

Both use the ``silero-vad`` package (MIT), which carries its ONNX model file (no download)
and keeps the model's recurrent state and 64-sample context between calls itself: its
documented streaming call ``model(window, 16000) -> probability`` is what its
``VADIterator`` uses, and ``get_speech_timestamps`` finds the speech in a whole clip.
~0.5 ms per 32 ms window on a CPU core.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mmdemo.errors import BadInputError

SAMPLE_RATE = 16000
WINDOW = 512  # samples per VAD decision (32 ms), fixed by the Silero model


def load_vad_model() -> Any:
    """A Silero VAD model (ONNX, one CPU thread) with its own streaming state.

    Importing ``silero_vad`` sets torch's thread count to 1 for the whole process; the count
    is put back, so the VLM and LLM keep every core."""
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    finally:
        torch.set_num_threads(threads)
    return load_silero_vad(onnx=True)


class SileroVad:
    """One Silero model for whole-clip analysis, shared by the users of an assistant (its
    state is reset per clip, so calls take turns under a lock)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def spans(
        self, samples: Any, config: VadConfig, max_segment_s: float = 30.0
    ) -> list[tuple[int, int]]:
        import numpy as np
        import torch
        from silero_vad import get_speech_timestamps

        audio = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        with self._lock:
            if self._model is None:
                self._model = load_vad_model()
            found = get_speech_timestamps(
                audio,
                self._model,
                threshold=config.threshold,
                sampling_rate=SAMPLE_RATE,
                min_speech_duration_ms=config.min_speech_ms,
                max_speech_duration_s=max_segment_s,
                min_silence_duration_ms=config.end_silence_ms,
                speech_pad_ms=config.pad_ms,
            )
        return [(int(s["start"]), int(s["end"])) for s in found]


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
    samples: Any,
    config: VadConfig = VadConfig(),
    max_segment_s: float = 30.0,
    vad: SileroVad | None = None,
) -> list[tuple[int, int]]:
    """(start, end) sample offsets of the speech in a 16 kHz clip; empty when none."""
    return (vad or SileroVad()).spans(samples, config, max_segment_s)


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

    Feed 16 kHz float32 chunks of any size; get ``Endpoint`` events. The endpointer owns a
    Silero model whose streaming state carries from window to window across chunks.
    """

    def __init__(self, config: VadConfig = VadConfig()) -> None:
        self.config = config
        self._model = load_vad_model()
        self.reset()

    def reset(self) -> None:
        import numpy as np

        self._model.reset_states()
        self._pending = np.zeros(0, np.float32)  # samples not yet a full window
        self._history: list[Any] = []  # windows kept before speech (for padding)
        self._utterance: list[Any] = []
        self._speech_windows = 0
        self._silent_windows = 0
        self.in_speech = False

    def _probability(self, window: Any) -> float:
        import torch

        return float(self._model(torch.from_numpy(window), SAMPLE_RATE).item())

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
