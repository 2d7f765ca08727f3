"""Voice assistant tab: speak (or upload), optionally show an image, hear and read the answer.

Push-to-talk: the turn starts when a recording stops or a file is uploaded (or on Send).
Hands-free: a streaming microphone feeds the VAD endpointer; a finished utterance starts a
turn, and speech during an answer interrupts it. The answer streams as audio chunks.
Layout and wiring only: the handlers are in ``actions.py``, the named endpoints in ``api.py``.
"""

from __future__ import annotations

import shutil
from typing import Any

import gradio as gr

from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.voice import api
from mmdemo.ui.tabs.voice.actions import VoiceActions
from mmdemo.ui.tabs.voice.view import (
    AUTO_LANGUAGE,
    DEFAULT_MODE,
    DEFAULT_VOICE,
    LATENCY_HEADERS,
    MODE_LABELS,
    VoiceSession,
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
    # Gradio streams audio out through an ffmpeg process; without ffmpeg the answer is
    # played once it is complete (plain audio output), so the tab works either way.
    streaming = shutil.which("ffmpeg") is not None
    actions = VoiceActions(assistant, chat, ctx.session_folders(), streaming)

    gr.Markdown(
        "Ask by voice: record (the answer starts when you stop recording) or upload a file, "
        "optionally with an image, or go hands-free. Pressing **Stop** (or, hands-free, just "
        "speaking) while it answers cuts the answer. Each turn's latency is measured from the "
        "end of your speech; the first turn also loads the models."
    )
    session = gr.State(VoiceSession)
    with gr.Row():
        with gr.Column(scale=1):
            audio_in = gr.Audio(
                sources=["microphone", "upload"],
                type="filepath",
                label="Your question (record or upload)",
                elem_id="voice-input",
            )
            mode_radio = gr.Radio(
                list(MODE_LABELS),
                value=DEFAULT_MODE,
                label="Who answers (the audio LLM answers without a transcript; no image)",
                elem_id="voice-mode",
            )
            image_in = gr.Image(
                sources=["upload", "webcam", "clipboard"],
                type="filepath",  # decoded by the house decoder (mmdemo.images)
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
    # what the live microphone has heard so far: a new utterance starts a turn, a new
    # barge-in pauses the answer (State.change fires only when the count changes)
    utterances, barge_ins = gr.State(0), gr.State(0)

    turn_inputs = [audio_in, image_in, voice_dd, language_dd, speed, adapter_dd, mode_radio]
    turn_inputs.append(session)
    turn_outputs = [chatbot, answer_audio, latency, status, voice_dd, language_dd]
    heavy = dict(
        concurrency_id="voice-turn",
        concurrency_limit=settings.concurrency,
        show_progress="minimal",
        api_visibility="private",
    )
    respond = ctx.heavy(guarded_stream(actions.respond))
    for trigger in (audio_in.stop_recording, audio_in.upload, send_btn.click):
        trigger(respond, turn_inputs, turn_outputs, js=PAUSE_JS, **heavy)
    # each microphone chunk runs the voice activity detector: a fraction of a request
    live_in.stream(
        ctx.heavy(guarded(actions.listen), stream=True),
        [live_in, session],
        [utterances, barge_ins],
        stream_every=0.25,
        time_limit=None,
        concurrency_limit=None,
        api_visibility="private",
        show_progress="hidden",
    )
    utterances.change(
        ctx.heavy(guarded_stream(actions.respond_live)),
        [image_in, voice_dd, language_dd, speed, adapter_dd, mode_radio, session],
        turn_outputs,
        js=PAUSE_JS,
        **heavy,
    )
    barge_ins.change(None, None, None, js=PAUSE_JS)
    stop_btn.click(
        actions.stop_ui, session, status, js=PAUSE_JS, queue=False, api_visibility="private"
    )
    clear_btn.click(
        actions.clear_ui,
        session,
        [chatbot, answer_audio, latency, status, audio_in],
        js=PAUSE_JS,
        queue=False,
        api_visibility="private",
    )
    api.register(ctx, actions, concurrency_limit=settings.concurrency)
    return {
        "on_load": (actions.on_load, [voice_dd, language_dd, adapter_dd]),
        "on_unload": actions.end_session,
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
        "mode": mode_radio,
    }
