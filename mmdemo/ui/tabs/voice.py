"""Voice assistant tab: speak (or upload), optionally show an image, hear and read the answer.

Push-to-talk: the turn starts when a recording stops or a file is uploaded (or on Send).
Hands-free: a streaming microphone feeds the VAD endpointer; a finished utterance starts a
turn, and speech during an answer interrupts it. The answer streams as audio chunks.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError
from mmdemo.flows.assistant import VoiceOptions
from mmdemo.flows.audio import SAMPLE_RATE, Clip, read_audio, wav_bytes
from mmdemo.flows.live import LiveListener
from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.context import AppContext
from mmdemo.ui.voice_view import (
    AUTO_LANGUAGE,
    DEFAULT_VOICE,
    LATENCY_HEADERS,
    VoiceSession,
    chat_messages,
    latency_rows,
    options_from,
    pcm16,
    status_md,
)

# Pause the answer that is playing (Stop, barge-in, a new question); returns the inputs.
PAUSE_JS = (
    "(...args) => { document.querySelectorAll('#voice-answer audio')"
    ".forEach(a => { a.pause(); }); return args; }"
)


def build(ctx: AppContext) -> dict[str, Any]:
    settings = ctx.settings
    chat = ctx.services.chat  # the VLM answers through it, with the user's adapter pinned
    assistant = ctx.services.voice

    gr.Markdown(
        "Ask by voice: record (the answer starts when you stop recording) or upload a file, "
        "optionally with an image, or go hands-free. Pressing **Stop** (or, hands-free, just "
        "speaking) while it answers cuts the answer. Each turn's latency is measured from the "
        "end of your speech; the first turn also loads the models."
    )
    # Gradio streams audio out through an ffmpeg process; without ffmpeg the answer is
    # played once it is complete (plain audio output), so the tab works either way.
    streaming = shutil.which("ffmpeg") is not None
    session = gr.State(VoiceSession)
    with gr.Row():
        with gr.Column(scale=1):
            audio_in = gr.Audio(
                sources=["microphone", "upload"],
                type="filepath",
                label="Your question (record or upload)",
                elem_id="voice-input",
            )
            image_in = gr.Image(
                sources=["upload", "webcam", "clipboard"],
                type="pil",
                label="Image (optional): the assistant looks at it",
                elem_id="voice-image",
                height=220,
            )
            with gr.Row():
                send_btn = gr.Button("Send", variant="primary", elem_id="voice-send")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="voice-stop")
                clear_btn = gr.Button("Clear", elem_id="voice-clear")
            with gr.Accordion("Hands-free: answer when I stop talking", open=False):
                live_in = gr.Audio(
                    sources=["microphone"],
                    streaming=True,
                    label="Live microphone (voice activity detection)",
                    elem_id="voice-live",
                )
            with gr.Row():
                voice_dd = gr.Dropdown(
                    [DEFAULT_VOICE],
                    value=DEFAULT_VOICE,
                    label="Voice",
                    allow_custom_value=True,
                    elem_id="voice-voice",
                )
                language_dd = gr.Dropdown(
                    [AUTO_LANGUAGE],
                    value=AUTO_LANGUAGE,
                    label="Language",
                    allow_custom_value=True,
                    elem_id="voice-language",
                )
            with gr.Row():
                speed = gr.Slider(
                    0.5, 2.0, value=1.0, step=0.1, label="Speed", elem_id="voice-speed"
                )
                adapter_dd = gr.Dropdown(
                    chat.adapter_choices(),
                    value="base",
                    label="Adapter (the VLM answers with it)",
                    elem_id="voice-adapter",
                )
        with gr.Column(scale=2):
            chatbot = gr.Chatbot(label="Conversation", height=360, elem_id="voice-chat")
            answer_audio = gr.Audio(
                label="Answer" if streaming else "Answer (played when complete: no ffmpeg)",
                streaming=streaming,
                autoplay=True,
                interactive=False,
                elem_id="voice-answer",
            )
            status = gr.Markdown(elem_id="voice-status")
            latency = gr.Dataframe(
                headers=LATENCY_HEADERS,
                label="Latency per turn (seconds after the end of speech)",
                interactive=False,
                elem_id="voice-latency",
            )
    # hidden: counters the live microphone bumps, and the API endpoint's outputs
    utterance_count = gr.Number(0, visible=False, elem_id="voice-utterances")
    barge_count = gr.Number(0, visible=False, elem_id="voice-barge-ins")
    api_btn = gr.Button(visible=False, elem_id="voice-api")
    api_transcript = gr.Textbox(visible=False, label="transcript")
    api_answer = gr.Textbox(visible=False, label="answer")
    api_audio = gr.Audio(visible=False, type="filepath", label="answer audio")

    def choices() -> tuple[Any, Any]:
        """Voices and languages of the loaded backends (nothing is loaded for this)."""
        manager = ctx.manager
        voices = list(assistant.voices) if manager.is_loaded("tts") else []
        languages = list(assistant.languages) if manager.is_loaded("asr") else []
        return (
            gr.update(choices=[DEFAULT_VOICE, *voices]),
            gr.update(choices=[AUTO_LANGUAGE, *languages]),
        )

    def on_load() -> tuple[Any, Any, Any]:
        return (*choices(), gr.update(choices=chat.adapter_choices()))

    def run_turn(
        sess: VoiceSession,
        clip: Clip,
        image: Any,
        options: VoiceOptions,
        speech_end: float,
        endpoint_s: float = 0.0,
        progress: gr.Progress | None = None,
    ) -> Iterator[tuple]:
        import numpy as np

        uses_vlm = image is not None or options.adapter not in (None, "", "base")
        needed = ("asr", "tts", "vlm" if uses_vlm else "llm")
        missing = [name for name in needed if not ctx.manager.is_loaded(name)]
        for i, name in enumerate(missing):  # first use: say why the first answer is slow
            if progress is not None:
                progress(i / len(missing), desc=f"loading the {name} model (first use)")
            ctx.manager.get(name)
        conv = sess.conversation
        last, spoken, rate = None, [], SAMPLE_RATE
        for update in assistant.turn(conv, clip, image, options, speech_end, endpoint_s):
            last = update
            chunk: Any = None
            if update.audio is not None:
                rate = update.sample_rate
                if streaming:
                    chunk = wav_bytes(update.audio, rate)
                else:
                    spoken.append(update.audio)
            if update.done and spoken:
                chunk = (rate, pcm16(np.concatenate(spoken)))
            rows = latency_rows([*conv.metrics, *([] if update.done else [update.metrics])])
            yield (
                chat_messages(conv, update),
                chunk,
                rows,
                status_md(update),
                gr.skip(),
                gr.skip(),
            )
        if last is not None:
            voices, languages = choices()
            yield gr.skip(), None, gr.skip(), gr.skip(), voices, languages

    def clip_and_options(
        audio_path: str | None, voice: str, language: str, rate: float, adapter: str
    ) -> tuple[Clip, VoiceOptions]:
        if not audio_path:
            raise BadInputError(
                "there is no question to answer yet",
                fix="record with the microphone or upload an audio file first",
            )
        options = options_from(voice, language, rate, adapter)
        assistant.check(options)  # before reading a long file
        return read_audio(audio_path, max_seconds=assistant.max_input_s), options

    turn_outputs = [chatbot, answer_audio, latency, status, voice_dd, language_dd]

    @guarded_stream
    def respond(
        audio_path: str | None,
        image: Any,
        voice: str,
        language: str,
        rate: float,
        adapter: str,
        sess: VoiceSession,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for one)
    ) -> Iterator[tuple]:
        speech_end = time.perf_counter()
        clip, options = clip_and_options(audio_path, voice, language, rate, adapter)
        yield from run_turn(sess, clip, image, options, speech_end, progress=progress)

    @guarded_stream
    def respond_live(
        image: Any,
        voice: str,
        language: str,
        rate: float,
        adapter: str,
        sess: VoiceSession,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> Iterator[tuple]:
        utterance = sess.live.take() if sess.live is not None else None
        if utterance is None:
            return
        options = options_from(voice, language, rate, adapter)
        yield from run_turn(
            sess,
            utterance.clip,
            image,
            options,
            utterance.detected_at,
            utterance.hangover_s,
            progress,
        )

    @guarded
    def listen(chunk: Any, sess: VoiceSession) -> tuple[int, int]:
        if sess.live is None:
            sess.live = LiveListener(sess.conversation, assistant.vad)
        if chunk is None:
            return sess.live.utterances, sess.live.barge_ins
        rate, data = chunk
        return sess.live.hear(data, rate)

    def stop(sess: VoiceSession) -> str:
        if sess.conversation.interrupt():
            return "Stopped: the answer was cut."
        return "Nothing to stop."

    def clear(sess: VoiceSession) -> tuple:
        sess.conversation.clear()
        if sess.live is not None:
            sess.live.reset()
        return [], None, [], "Conversation cleared.", None

    @guarded
    def voice_api(
        audio_path: str | None,
        image: Any,
        voice: str,
        language: str,
        rate: float,
        adapter: str,
        sess: VoiceSession,
    ) -> tuple[str, str, Any]:
        """Audio file in -> (transcript, answer text, answer audio); remembers the session."""
        import numpy as np

        speech_end = time.perf_counter()
        clip, options = clip_and_options(audio_path, voice, language, rate, adapter)
        chunks, sample_rate, final = [], SAMPLE_RATE, None
        for update in assistant.turn(sess.conversation, clip, image, options, speech_end):
            if update.audio is not None:
                chunks.append(update.audio)
                sample_rate = update.sample_rate
            final = update
        if not chunks:
            return final.transcript, final.answer, None
        audio = (sample_rate, pcm16(np.concatenate(chunks)))
        return final.transcript, final.answer, audio

    turn_inputs = [audio_in, image_in, voice_dd, language_dd, speed, adapter_dd, session]
    heavy = dict(
        concurrency_id="voice-turn",
        concurrency_limit=settings.concurrency,
        show_progress="minimal",
    )
    audio_in.stop_recording(
        respond, turn_inputs, turn_outputs, js=PAUSE_JS, api_visibility="private", **heavy
    )
    audio_in.upload(
        respond, turn_inputs, turn_outputs, js=PAUSE_JS, api_visibility="private", **heavy
    )
    send_btn.click(respond, turn_inputs, turn_outputs, js=PAUSE_JS, api_name="voice_turn", **heavy)
    live_in.stream(
        listen,
        [live_in, session],
        [utterance_count, barge_count],
        stream_every=0.25,
        time_limit=None,
        concurrency_limit=None,
        api_visibility="private",
        show_progress="hidden",
    )
    utterance_count.change(
        respond_live,
        [image_in, voice_dd, language_dd, speed, adapter_dd, session],
        turn_outputs,
        js=PAUSE_JS,
        api_visibility="private",
        **heavy,
    )
    barge_count.change(None, None, None, js=PAUSE_JS)
    stop_btn.click(stop, session, status, js=PAUSE_JS, queue=False, api_name="voice_stop")
    clear_btn.click(
        clear,
        session,
        [chatbot, answer_audio, latency, status, audio_in],
        js=PAUSE_JS,
        queue=False,
        api_name="voice_clear",
    )
    api_btn.click(
        voice_api,
        turn_inputs,
        [api_transcript, api_answer, api_audio],
        api_name="voice",
        concurrency_id="voice-turn",
        concurrency_limit=settings.concurrency,
    )
    return {
        "on_load": (on_load, [voice_dd, language_dd, adapter_dd]),
        "adapter": adapter_dd,
        "audio_in": audio_in,
        "image_in": image_in,
        "chatbot": chatbot,
        "answer_audio": answer_audio,
        "latency": latency,
        "status": status,
        "stop": stop_btn,
        "clear": clear_btn,
        "send": send_btn,
        "live_in": live_in,
        "voice": voice_dd,
        "language": language_dd,
        "speed": speed,
    }
