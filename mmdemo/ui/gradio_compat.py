"""The parts of Gradio that are not its public API but that mmdemo relies on, kept in one
place. ``tests/test_gradio_compat.py`` pins them to the Gradio version they were read from:
on an upgrade, re-check each one there.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components.api_component import Api as ApiComponent  # the input of gr.api()
from gradio.utils import get_upload_folder

__all__ = [
    "ApiComponent",
    "before_preprocess",
    "raw_client_addresses",
    "upload_folder",
]

READ_FOR = "6.31"  # the Gradio version these were read from


def upload_folder() -> Path:
    """Where Gradio keeps uploads (``GRADIO_TEMP_DIR`` or the temp folder's ``gradio``)."""
    return Path(get_upload_folder())


def before_preprocess(demo: gr.Blocks, check: Callable[[Any, list[Any]], None]) -> None:
    """Run ``check(block_fn, raw_inputs)`` on every event's inputs as the client sent them,
    before Gradio's own preprocessing opens any file. ``Blocks.preprocess_data`` is where
    Gradio 6.31 turns the request's values into the handler's arguments (for every event:
    the tabs' own, the named ``gr.api`` endpoints, streams); an exception raised by
    ``check`` reaches the client as the event's error."""
    original = demo.preprocess_data

    @functools.wraps(original)
    async def preprocess_data(block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
        check(block_fn, inputs)
        return await original(block_fn, inputs, *args, **kwargs)

    demo.preprocess_data = preprocess_data  # type: ignore[method-assign]


@contextlib.contextmanager
def raw_client_addresses() -> Iterator[None]:
    """While the server starts: uvicorn rewrites no request's client from X-Forwarded-For
    (by default it believes the header from 127.0.0.1, e.g. a share tunnel's), so the client
    address is decided once, by ``flows.limits.client_key`` and MMDEMO_TRUSTED_PROXIES.
    uvicorn.Config reads ``FORWARDED_ALLOW_IPS`` when Gradio makes its server."""
    saved = os.environ.get("FORWARDED_ALLOW_IPS")
    os.environ["FORWARDED_ALLOW_IPS"] = ""  # "" trusts no peer
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("FORWARDED_ALLOW_IPS", None)
        else:
            os.environ["FORWARDED_ALLOW_IPS"] = saved
