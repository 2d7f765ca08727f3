"""The adapter manager inside the chat tab: list, upload (validated), delete."""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.flows.chat import BASE_NAME, ChatService
from mmdemo.flows.system import human_bytes
from mmdemo.ui.adapters_api import install_upload, register_api
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext

HEADERS = ["name", "method", "dataset", "score", "rank", "base model", "size", "source", "loaded"]


def adapter_rows(chat: ChatService) -> list[list[Any]]:
    resident = chat.resident_adapters()
    rows = []
    for a in chat.store.list():
        score = ", ".join(f"{k} {v}" for k, v in list(a.metrics.items())[:1]) or "—"
        rows.append(
            [
                a.name,
                a.method,
                a.dataset or "—",
                score,
                a.rank or "—",
                a.base_model or "—",
                human_bytes(a.size_bytes),
                "built in" if a.builtin else "uploaded",
                "yes" if a.name in resident else "",
            ]
        )
    return rows


def build(ctx: AppContext, adapter_dropdown: gr.Dropdown) -> dict[str, Any]:
    chat, folders = ctx.services.chat, ctx.session_folders()
    with gr.Accordion("Manage adapters", open=False, elem_id="chat-adapters-panel"):
        table = gr.Dataframe(
            adapter_rows(chat),
            headers=HEADERS,
            interactive=False,
            elem_id="chat-adapters",
            wrap=True,
        )
        upload = gr.File(
            label="Upload a PEFT adapter (.zip, or adapter_config.json + "
            "adapter_model.safetensors)",
            file_count="multiple",
            file_types=[".zip", ".json", ".safetensors"],
            elem_id="chat-upload",
        )
        name = gr.Textbox(
            label="Name (optional)",
            elem_id="chat-upload-name",
            placeholder="defaults to the zip's name",
        )
        with gr.Row():
            upload_btn = gr.Button("Add adapter", variant="primary", elem_id="chat-upload-btn")
            delete_btn = gr.Button(
                "Delete selected adapter",
                variant="stop",
                elem_id="chat-delete-btn",
                visible=not chat.settings.hosted,  # visitors share the adapters
            )
        refresh_btn = gr.Button("Refresh list", size="sm", elem_id="chat-adapters-refresh")
        listing = gr.JSON(visible=False)

    def choices(value: str = BASE_NAME) -> dict:
        names = chat.adapter_choices()
        return gr.update(choices=names, value=value if value in names else BASE_NAME)

    @guarded
    def add(files: list[str] | None, wanted: str, request: gr.Request):
        if not files:
            raise gr.Error("Choose an adapter zip or its files first.")
        info = install_upload(chat, files, wanted, folders.folder(request.session_hash))
        gr.Info(f"Adapter {info['name']} added and loaded")
        return adapter_rows(chat), choices(info["name"]), None, ""

    @guarded
    def delete(current: str):
        if not current or current == BASE_NAME:
            raise gr.Error("Select an adapter in the Adapter menu first (not base).")
        chat.delete_adapter(current)
        gr.Info(f"Adapter {current} deleted")
        return adapter_rows(chat), choices(BASE_NAME)

    def refresh(current: str):
        return adapter_rows(chat), choices(current)

    upload_btn.click(
        ctx.heavy(add),
        [upload, name],
        [table, adapter_dropdown, upload, name],
        concurrency_id="vlm",
        api_visibility="private",
    )
    delete_btn.click(
        ctx.heavy(delete),
        adapter_dropdown,
        [table, adapter_dropdown],
        concurrency_id="vlm",
        api_visibility="private",
    )
    refresh_btn.click(
        ctx.light(refresh, "lists the adapter folder"),
        adapter_dropdown,
        [table, adapter_dropdown],
        api_visibility="private",
    )
    refresh_btn.click(
        ctx.light(chat.adapters_summary, "reads the adapters' metadata files"),
        None,
        listing,
        api_name="adapters",
    )
    register_api(ctx)
    return {
        "adapters_table": table,
        "upload": upload,
        "upload_name": name,
        "upload_btn": upload_btn,
        "delete_btn": delete_btn,
        # filled when a page opens: adapters added since (uploads, training) show up
        "on_load": (
            lambda: (adapter_rows(chat), gr.update(choices=chat.adapter_choices())),
            [table, adapter_dropdown],
        ),
    }
