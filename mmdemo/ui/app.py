"""Build and launch the Gradio app: one ``gr.Tab`` per module in ``mmdemo.ui.tabs``."""

from __future__ import annotations

import importlib
import os
import weakref
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from mmdemo.config import Settings
from mmdemo.flows.services import ModelManager
from mmdemo.logs import quiet_library_logs
from mmdemo.serve.memory import FreeMemoryTrimmer, limit_malloc_arenas
from mmdemo.ui.context import AppContext
from mmdemo.ui.gradio_compat import raw_client_addresses
from mmdemo.ui.hosting import launch_options, mode_line, mount_openai_api
from mmdemo.ui.uploads import guard_file_inputs

# (tab label, module, elem_id); each module exports build(ctx) -> dict[str, gr.Component].
TABS: tuple[tuple[str, str, str], ...] = (
    ("Visual chat", "mmdemo.ui.tabs.chat", "tab-chat"),
    ("Arena", "mmdemo.ui.tabs.arena", "tab-arena"),
    ("CLIP search", "mmdemo.ui.tabs.clip", "tab-clip"),
    ("Voice assistant", "mmdemo.ui.tabs.voice", "tab-voice"),
    ("Gestures", "mmdemo.ui.tabs.gestures", "tab-gestures"),
    ("Video summary", "mmdemo.ui.tabs.video", "tab-video"),
    ("Fine-tune", "mmdemo.ui.tabs.train", "tab-train"),
    ("System", "mmdemo.ui.tabs.system", "tab-system"),
)

HOSTED_NOTE = (
    " *Hosted mode: server paths, other model ids"
    " and (unless allowed) training are off; run it locally for everything.*"
)
ASSETS = Path(__file__).resolve().parents[2] / "assets"
CSS = """
#app-title h1 { margin-bottom: 0; }
.metrics-line { font-size: 0.85em; opacity: 0.8; }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="sky")


def create_ui(
    settings: Settings | None = None,
    manager: ModelManager | None = None,
    tabs: tuple[tuple[str, str, str], ...] = TABS,
) -> gr.Blocks:
    """The whole app. Builds widgets only: no model loads here."""
    settings = settings or Settings.load()
    ctx = AppContext.create(settings, manager)
    # Gradio's upload cache is emptied of old files (hosted: hourly), so uploads do not pile up
    with gr.Blocks(
        title="mmdemo · multimodal demo studio", delete_cache=settings.cache_cleanup
    ) as demo:
        gr.Markdown(
            "# mmdemo\nMultimodal demo studio: visual chat with hot-swapped LoRA adapters, "
            "CLIP search, voice assistant, gestures to text, video summaries, fine-tuning studio."
            + (HOSTED_NOTE if settings.hosted else ""),
            elem_id="app-title",
        )
        components: dict[str, dict[str, Any]] = {}
        tab_blocks: dict[str, gr.Tab] = {}
        for label, module, elem_id in tabs:
            with gr.Tab(label, id=elem_id, elem_id=elem_id) as tab:
                components[label] = importlib.import_module(module).build(ctx)
            tab_blocks[label] = tab
        poll_only_when_shown(tab_blocks, components)
        # A tab may ask to be filled when the page opens: {"on_load": (fn, outputs)}.
        for built in components.values():
            if "on_load" in built:
                fn, outputs = built["on_load"]
                demo.load(fn, None, outputs, api_visibility="private", queue=False)
        # a closed tab ends its session: its scratch files and API conversation go
        folders = ctx.session_folders()

        def end_session(request: gr.Request) -> None:
            for built in components.values():
                if "on_unload" in built:
                    built["on_unload"](request.session_hash)
            folders.drop(request.session_hash)

        demo.unload(ctx.light(end_session, "drops the closed session's scratch files"))
    guard_file_inputs(demo)  # every event's file arguments must be uploads
    hide_state_initialisers(demo)
    demo.mmdemo_context = ctx  # tests and the CLI reach the shared services through this
    return demo


def poll_only_when_shown(tabs: dict[str, gr.Tab], components: dict[str, dict[str, Any]]) -> None:
    """A tab's ``poll`` timer ticks only while that tab is shown: selecting the tab starts
    it, selecting any other tab stops it (no page polls for a tab nobody looks at)."""
    for label, built in components.items():
        timer = built.get("poll")
        if timer is None:
            continue
        for other, tab in tabs.items():
            active = other == label
            tab.select(
                lambda active=active: gr.Timer(active=active),
                None,
                timer,
                queue=False,
                api_visibility="private",
                show_progress="hidden",
            )


def hide_state_initialisers(demo: gr.Blocks) -> None:
    """Keep Gradio's own per-session ``gr.State`` initialisers (``gr.State(VoiceSession)``
    becomes an endpoint named after the class) out of the API: they take and return nothing
    a client could use."""
    for fn in demo.fns.values():
        outputs = fn.outputs or []
        if not fn.inputs and outputs and all(isinstance(o, gr.State) for o in outputs):
            fn.api_visibility = "private"


def launch(
    settings: Settings | None = None,
    tabs: tuple[tuple[str, str, str], ...] = TABS,
    **launch_kwargs: Any,
) -> gr.Blocks:
    """Build the app and serve it with ``/v1`` on the same port (blocking unless
    ``prevent_thread_lock=True``)."""
    quiet_library_logs()
    limit_malloc_arenas()
    settings = settings or Settings.load()
    print(mode_line(settings), flush=True)
    demo = create_ui(settings, tabs=tabs)
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=64)
    kwargs: dict[str, Any] = dict(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        theme=theme(),
        css=CSS,
        allowed_paths=[str(ASSETS)],
        show_error=True,
        **launch_options(settings),
    )
    kwargs.update(launch_kwargs)
    block = not kwargs.pop("prevent_thread_lock", False)
    # Gradio has no catch-all route: the /v1 router joins its FastAPI app once it runs
    with raw_client_addresses():
        demo.launch(prevent_thread_lock=True, **kwargs)
    mount_openai_api(demo)
    # freed heap memory goes back to the system after peaks, for as long as the app serves
    ref = weakref.ref(demo)
    FreeMemoryTrimmer.start(lambda: getattr(ref(), "is_running", False))
    if block:
        demo.block_thread()
    return demo


def main() -> None:
    """``python app.py``: serve with settings from the environment."""
    launch()
