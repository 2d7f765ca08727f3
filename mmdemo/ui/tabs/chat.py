"""Visual chat tab: streamed multi-turn answers about images, with a LoRA adapter picker."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.errors import MMDemoError
from mmdemo.flows.chat import BASE_NAME, AnswerMetrics, ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.ranks import rank_options, served_name
from mmdemo.flows.similar import SimilarRequest
from mmdemo.flows.system import human_bytes
from mmdemo.redact import redact_url
from mmdemo.ui.common import guarded, guarded_stream, seconds
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs import adapters_panel
from mmdemo.zerogpu import gpu

ASSET_IMAGES = Path(__file__).resolve().parents[3] / "assets" / "images"


@dataclass
class ChatState:
    """Per-browser-session state: the conversation and the running answer's stop switch."""

    session: ChatSession = field(default_factory=ChatSession)
    stop: threading.Event = field(default_factory=threading.Event)

    def new_answer(self) -> threading.Event:
        self.stop = threading.Event()
        return self.stop


OFF = "off"


def index_choices(chat: ChatService) -> list[str]:
    return [OFF, *(chat.retrieval.names() if chat.retrieval is not None else [])]


def metrics_md(m: AnswerMetrics | None) -> str:
    if m is None:
        return ""
    parts = [
        f"**{m.adapter}**",
        f"queue {seconds(m.queue_wait_s)}",
        f"adapter switch {seconds(m.switch_s)}"
        if m.batch_rows == 1
        else f"batched with {m.batch_rows - 1} other answer(s), no adapter switch",
        f"first token {seconds(m.ttft_s)}",
        f"{m.tokens_per_s:.1f} tok/s",
        f"{m.tokens} tokens",
        f"peak memory {human_bytes(m.peak_memory_bytes)}",
    ]
    if m.stopped:
        parts.append("stopped")
    return " · ".join(parts)


def to_messages(
    session: ChatSession, pending: tuple[str, list[str], str] | None = None
) -> list[dict]:
    """Chatbot message dicts for the conversation (+ a turn still being answered)."""
    rows = [(t.user, t.image_paths, t.answer) for t in session.turns]
    if pending:
        rows.append(pending)
    messages: list[dict] = []
    for user, paths, answer in rows:
        content: list[Any] = [{"path": p} for p in paths if p and Path(p).is_file()]
        messages.append({"role": "user", "content": [*content, user] if content else user})
        if answer:
            messages.append({"role": "assistant", "content": answer})
    return messages


def build(ctx: AppContext) -> dict[str, Any]:
    chat = ctx.services.chat
    state = gr.State(lambda: ChatState())
    with gr.Row():
        with gr.Column(scale=3):
            bot = gr.Chatbot(label="Conversation", height=460, elem_id="chat-bot", buttons=["copy"])
            box = gr.MultimodalTextbox(
                placeholder="Ask about one or more images…",
                file_types=["image"],
                file_count="multiple",
                sources=["upload"],
                elem_id="chat-input",
                show_label=False,
            )
            with gr.Row():
                stop_btn = gr.Button("Stop", variant="stop", elem_id="chat-stop", size="sm")
                regen_btn = gr.Button("Regenerate", elem_id="chat-regenerate", size="sm")
                clear_btn = gr.Button("Clear", elem_id="chat-clear", size="sm")
            metrics = gr.Markdown(elem_id="chat-metrics", elem_classes=["metrics-line"])
            examples = [
                {"text": "What is in this image?", "files": [str(ASSET_IMAGES / "cat.jpg")]},
                {
                    "text": "Describe the picture in detail.",
                    "files": [str(ASSET_IMAGES / "astronaut.jpg")],
                },
                {
                    "text": "What color is the shape?",
                    "files": [str(ASSET_IMAGES / "red-circle.png")],
                },
            ]
            gr.Examples(
                [[e] for e in examples if all(Path(f).is_file() for f in e["files"])],
                inputs=[box],
                label="Examples",
            )
        with gr.Column(scale=1, min_width=280):
            adapter = gr.Dropdown(
                chat.adapter_choices(),
                value=BASE_NAME,
                label="Adapter",
                elem_id="chat-adapter",
                interactive=True,
            )
            rank = gr.Dropdown(
                [],
                value=None,
                label="DyLoRA rank",
                info="One adapter, every rank up to its own: try a lower one",
                visible=False,
                elem_id="chat-rank",
            )
            adapter_info = gr.Markdown(elem_id="chat-adapter-info")
            with gr.Accordion("Generation", open=False):
                max_new = gr.Slider(
                    1, 1024, value=128, step=1, label="Max new tokens", elem_id="chat-max-new"
                )
                greedy = gr.Checkbox(True, label="Greedy (deterministic)", elem_id="chat-greedy")
                temperature = gr.Slider(0.05, 2.0, value=0.7, step=0.05, label="Temperature")
                top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top-p")
            with gr.Accordion("Similar cases (CLIP index)", open=False):
                similar_index = gr.Dropdown(
                    index_choices(chat),
                    value=OFF,
                    label="Index",
                    elem_id="chat-similar-index",
                    info="Add indexed images like yours to the context",
                )
                similar_k = gr.Slider(1, 4, value=2, step=1, label="How many")
                similar_gallery = gr.Gallery(
                    label="Used for the last answer",
                    columns=4,
                    height=140,
                    elem_id="chat-similar-gallery",
                )
            panel = adapters_panel.build(ctx, adapter)

    gen_inputs = [adapter, rank, max_new, temperature, top_p, greedy]

    def settings_of(max_new_tokens, temp, p, is_greedy) -> GenerationSettings:
        return GenerationSettings(int(max_new_tokens), float(temp), float(p), bool(is_greedy))

    @gpu("chat")
    @guarded_stream
    def submit(
        message: dict,
        st: ChatState,
        name: str,
        picked_rank: int | None,
        max_new_tokens,
        temp,
        p,
        is_greedy,
        index: str,
        k: float,
    ):
        text, files = (message or {}).get("text", ""), (message or {}).get("files", [])
        name = served_name(chat, name, picked_rank)
        gen = settings_of(max_new_tokens, temp, p, is_greedy)
        similar = SimilarRequest(index, int(k)) if index and index != OFF else None
        stop = st.new_answer()
        paths = [f if isinstance(f, str) else f.get("path", "") for f in files]
        yield (
            to_messages(st.session, (text, paths, "…")),
            "",
            gr.update(value=None),
            st,
            gr.update(),
        )
        for update in chat.stream(st.session, text, paths, name, gen, stop, similar):
            pending = None if update.metrics else (text, paths, update.text or "…")
            cases = gr.update()
            if update.metrics:
                # the decoded pictures, not their paths: an index's files live under
                # MMDEMO_HOME (or a server folder), which Gradio does not serve from
                cases = [
                    (c.image, f"{c.name} · {c.score:.2f}") for c in st.session.turns[-1].similar
                ]
            yield (
                to_messages(st.session, pending),
                metrics_md(update.metrics),
                gr.update(),
                st,
                cases,
            )

    @gpu("chat")
    @guarded_stream
    def regenerate(
        st: ChatState, name: str, picked_rank: int | None, max_new_tokens, temp, p, is_greedy
    ):
        gen = settings_of(max_new_tokens, temp, p, is_greedy)
        name = served_name(chat, name, picked_rank)
        last = st.session.turns[-1] if st.session.turns else None
        stop = st.new_answer()
        for update in chat.regenerate(st.session, adapter=name, gen=gen, stop=stop):
            pending = (
                None
                if update.metrics or last is None
                else (last.user, last.image_paths, update.text or "…")
            )
            yield to_messages(st.session, pending), metrics_md(update.metrics), st

    def stop(st: ChatState) -> None:
        st.stop.set()

    def rank_menu(name: str) -> Any:
        """The rank menu: shown, from the adapter's own rank down, for a DyLoRA adapter."""
        try:
            options = rank_options(chat, name)
        except MMDemoError:  # a deleted adapter: show_adapter says so
            options = []
        first = options[0][1] if options else None
        return gr.update(choices=options, value=first, visible=bool(options))

    def clear(st: ChatState):
        st.stop.set()
        st.session.clear()
        return [], "", st

    @guarded
    def show_adapter(name: str, picked_rank: int | None = None) -> str:
        name = served_name(chat, name, picked_rank)
        if chat.remote is not None:
            where = redact_url(chat.remote.endpoint.base_url)
            return f"**{name}**, answered by the remote VLM at {where}"
        info = chat.adapter_info(name)
        if info is None:
            return "The base model with no adapter."
        switch = ""
        took = chat.warm_adapter(info)
        if took is not None:
            switch = f"\n\nready in {seconds(took)} (kept loaded; switching back is instant)"
        score = ", ".join(f"{k} {v}" for k, v in info.metrics.items()) or "not evaluated"
        return (
            f"**{info.name}** — {info.description or info.method}\n\n"
            f"method `{info.method}` · rank {info.serve_rank or info.rank} · "
            f"dataset {info.dataset or 'unknown'} · "
            f"score {score} · base `{info.base_model or '?'}`{switch}"
        )

    # answers that run together share one batch, so the VLM takes more requests at once
    # than other heavy events (non-LoRA adapters still wait for the model, one at a time)
    vlm_limit = max(ctx.settings.concurrency, chat.batch_max_rows)
    sub = box.submit(
        ctx.heavy(submit),
        [box, state, *gen_inputs, similar_index, similar_k],
        [bot, metrics, box, state, similar_gallery],
        concurrency_id="vlm",
        concurrency_limit=vlm_limit,
        api_visibility="private",
    )
    regen_btn.click(
        ctx.heavy(regenerate),
        [state, *gen_inputs],
        [bot, metrics, state],
        concurrency_id="vlm",
        api_visibility="private",
    )
    stop_btn.click(stop, state, None, queue=False, api_visibility="private")
    clear_btn.click(clear, state, [bot, metrics, state], queue=False, api_visibility="private")
    # showing an adapter warms it (loads its weights onto the shared VLM, and the VLM itself
    # on first use): model work, so it queues with the other VLM events and is heavy
    adapter.change(
        ctx.heavy(show_adapter),
        adapter,
        adapter_info,
        api_visibility="private",
        concurrency_id="vlm",
    )
    # a DyLoRA adapter brings its rank menu (a reading of its metadata: no model work)
    adapter.change(rank_menu, adapter, rank, queue=False, api_visibility="private")
    rank.input(
        ctx.heavy(show_adapter),
        [adapter, rank],
        adapter_info,
        api_visibility="private",
        concurrency_id="vlm",
    )
    # adapters trained or uploaded since the page opened appear when the menu is opened
    adapter.focus(
        lambda: gr.update(choices=chat.adapter_choices()),
        None,
        adapter,
        queue=False,
        api_visibility="private",
    )
    panel_fn, panel_outputs = panel.pop("on_load")

    def on_load():
        return (*panel_fn(), gr.update(choices=index_choices(chat)))

    return {
        "bot": bot,
        "box": box,
        "adapter": adapter,
        "rank": rank,
        "metrics": metrics,
        "state": state,
        "submit_event": sub,
        "similar_index": similar_index,
        **panel,
        "on_load": (on_load, [*panel_outputs, similar_index]),
    }
