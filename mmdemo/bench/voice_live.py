"""End of speech -> first audio through the live microphone path, VAD wait included.

The app's hands-free path (ui/tabs/voice: ``listen`` then ``respond_live``) gets the microphone
as 0.25 s chunks (the stream's ``stream_every``), feeds them to a ``LiveListener`` (Silero VAD
endpointing: 600 ms of silence ends an utterance) and answers the utterance it finished. Here
each LibriVox clip, followed by silence, is played into a listener in real time: chunk ``i``
is handed over when its last sample has been "spoken" (``i + 1`` chunk lengths after the
start). The end of speech is the moment the clip's last speech sample was spoken (at
real-time pace; the earlier of Silero's offline speech span and the live endpointer's own
silence start); the latency runs from there to the first audio of the
answer, so it holds the chunking, the VAD's silence wait, ASR, the LLM's first words and TTS.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

CHUNK_S = 0.25  # the browser stream's chunk (mmdemo/ui/tabs/voice/layout.py stream_every)
TAIL_S = 3.0  # silence played after each clip


@dataclass(frozen=True)
class LiveTurn:
    endpoint_s: float  # end of speech -> the listener declared the utterance over
    first_audio_s: float  # end of speech -> first audio of the answer
    hangover_s: float  # silence the VAD measured before declaring the end


def live_turn(assistant: Any, clip: Any) -> LiveTurn:
    """Play ``clip`` (then silence) into a live listener in real time and answer it."""
    import numpy as np

    from mmdemo.flows.assistant import Conversation
    from mmdemo.flows.audio import SAMPLE_RATE
    from mmdemo.flows.live import LiveListener
    from mmdemo.flows.vad import speech_spans

    # where the speech really ends: Silero's spans without the padding the app adds around them
    spans = speech_spans(clip.samples, dataclasses.replace(assistant.vad, pad_ms=0))
    if not spans:
        raise ValueError("no speech found in the clip")
    speech_end_sample = spans[-1][1]
    audio = np.concatenate([clip.samples, np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32)])
    step = int(CHUNK_S * SAMPLE_RATE)
    listener = LiveListener(Conversation(), assistant.vad)
    start = time.perf_counter()
    for i, at in enumerate(range(0, len(audio), step)):
        due = start + (i + 1) * CHUNK_S  # the chunk's last sample has been spoken
        time.sleep(max(0.0, due - time.perf_counter()))
        listener.hear(audio[at : at + step], SAMPLE_RATE)
        if listener.utterances:
            break
    utterance = listener.take()
    if utterance is None:
        raise RuntimeError("the listener never declared the end of the utterance")
    # the live endpointer's own idea of where the silence began (its threshold differs from
    # the offline spans'): the earlier of the two counts, so the wait is never understated
    heard = min(at + step, len(audio))
    live_end_sample = heard - int(utterance.hangover_s * SAMPLE_RATE)
    speech_end = start + min(speech_end_sample, live_end_sample) / SAMPLE_RATE
    *_, done = assistant.turn(
        listener.conversation,
        utterance.clip,
        speech_end=utterance.detected_at,
        endpoint_s=utterance.hangover_s,
    )
    first_audio = utterance.detected_at + (done.metrics.first_audio_s or 0.0)
    return LiveTurn(
        endpoint_s=utterance.detected_at - speech_end,
        first_audio_s=first_audio - speech_end,
        hangover_s=utterance.hangover_s,
    )
