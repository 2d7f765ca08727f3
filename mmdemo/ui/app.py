"""Build and launch the Gradio app: one ``gr.Tab`` per tab package in ``mmdemo.ui.tabs``.

``build_app`` makes the services (``mmdemo.wiring``) and the UI and returns an ``App``: the
Blocks with the context its tabs were built with, which the CLI, benchmarks and tests use.
"""

from __future__ import annotations

import importlib
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from mmdemo.config import Settings
from mmdemo.heap import limit_malloc_arenas
from mmdemo.logs import quiet_library_logs
from mmdemo.serve.memory import FreeMemoryTrimmer
from mmdemo.ui.context import AppContext
from mmdemo.ui.gradio_compat import raw_client_addresses
from mmdemo.ui.hosting import launch_options, mode_line, with_routes
from mmdemo.ui.sessions import SessionFolders
from mmdemo.ui.uploads import guard_file_inputs

if TYPE_CHECKING:
    from mmdemo.models.manager import ModelManager
    from mmdemo.wiring import Services

# (tab label, module, elem_id); each layout module has build(ctx) -> dict[str, Any].
TABS: tuple[tuple[str, str, str], ...] = (
    ("Visual chat", "mmdemo.ui.tabs.chat.layout", "tab-chat"),
    ("Arena", "mmdemo.ui.tabs.arena.layout", "tab-arena"),
    ("CLIP search", "mmdemo.ui.tabs.clip.layout", "tab-clip"),
    ("Voice assistant", "mmdemo.ui.tabs.voice.layout", "tab-voice"),
    ("Gestures", "mmdemo.ui.tabs.gestures.layout", "tab-gestures"),
    ("Video summary", "mmdemo.ui.tabs.video.layout", "tab-video"),
    ("Fine-tune", "mmdemo.ui.tabs.train.layout", "tab-train"),
    ("How it works", "mmdemo.ui.tabs.how.layout", "tab-how"),
    ("System", "mmdemo.ui.tabs.system.layout", "tab-system"),
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


@dataclass(frozen=True)
class App:
    """A built app: its Blocks, the context its tabs were built with (settings, services,
    session folders) and the manager that owns its models (the CLI and tests unload them)."""

    demo: gr.Blocks
    context: AppContext
    manager: ModelManager

    @property
    def services(self) -> Services:
        return self.context.services

    @property
    def settings(self) -> Settings:
        return self.context.settings

    def launch(self, **launch_kwargs: Any) -> App:
        """``demo.launch(...)`` with ``/v1`` served on the same server from its start."""
        from mmdemo.wiring import openai_router

        router = openai_router(self.services, self.settings)
        self.demo.launch(app_kwargs=with_routes(router), **launch_kwargs)
        return self

    def close(self) -> None:
        """Stop serving and free every model."""
        self.demo.close()
        self.manager.unload_all()


def build_app(
    settings: Settings | None = None,
    manager: ModelManager | None = None,
    tabs: tuple[tuple[str, str, str], ...] = TABS,
) -> App:
    """The whole app: its services (made once, in ``mmdemo.wiring``) and its UI. Builds
    widgets only: no model loads here."""
    from mmdemo.wiring import create_manager, create_services

    settings = settings or Settings.load()
    manager = manager or create_manager(settings)
    ctx = AppContext(settings, create_services(settings, manager), SessionFolders())
    return App(create_blocks(ctx, tabs), ctx, manager)


def create_ui(
    settings: Settings | None = None,
    manager: ModelManager | None = None,
    tabs: tuple[tuple[str, str, str], ...] = TABS,
) -> gr.Blocks:
    """The whole app's Blocks (``build_app(...).demo``)."""
    return build_app(settings, manager, tabs).demo


def create_blocks(ctx: AppContext, tabs: tuple[tuple[str, str, str], ...] = TABS) -> gr.Blocks:
    """The UI over ``ctx``: the title and one ``gr.Tab`` per tab's ``build(ctx)``."""
    settings = ctx.settings
    # Gradio's upload cache is emptied of old files (hosted: hourly), so uploads do not pile up
    # no telemetry: Gradio 6.31 then starts no version check and sends no usage events
    with gr.Blocks(
        title="mmdemo · multimodal demo studio",
        delete_cache=settings.cache_cleanup,
        analytics_enabled=False,
    ) as demo:
        gr.Markdown(
            "# mmdemo\nMultimodal demo studio: visual chat with hot-swapped LoRA adapters, "
            "CLIP search, voice assistant, gestures to text, video summaries, fine-tuning "
            "studio, and how it all works inside." + (HOSTED_NOTE if settings.hosted else ""),
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
) -> App:
    """Build the app and serve it with ``/v1`` on the same port (blocking unless
    ``prevent_thread_lock=True``)."""
    quiet_library_logs()
    limit_malloc_arenas()
    settings = settings or Settings.load()
    print(mode_line(settings), flush=True)
    app = build_app(settings, tabs=tabs)
    app.demo.queue(default_concurrency_limit=settings.concurrency, max_size=64)
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
    with raw_client_addresses():
        app.launch(prevent_thread_lock=True, **kwargs)
    # freed heap memory goes back to the system after peaks, for as long as the app serves
    ref = weakref.ref(app.demo)
    FreeMemoryTrimmer.start(lambda: getattr(ref(), "is_running", False))
    if block:
        app.demo.block_thread()
    return app


def main() -> None:
    """``python app.py``: serve with settings from the environment."""
    launch()
