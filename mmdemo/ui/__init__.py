"""Gradio UI: ``create_ui(settings) -> gr.Blocks``; one package per tab under ``tabs/``.

gradio is imported only when the UI is built, so ``import mmdemo.ui`` stays cheap.
"""

from __future__ import annotations

from typing import Any


def create_ui(*args: Any, **kwargs: Any) -> Any:
    from mmdemo.ui.app import create_ui as _create_ui

    return _create_ui(*args, **kwargs)
