"""The one check every file argument passes: it must be a file the caller uploaded.

A file argument names a path on this server, so trusting it would let any caller read the
server's files. A path is accepted only when, with every link resolved, it lies inside
Gradio's upload folder and is a regular file (no folder, no device, no link leading out).

Gradio itself checks a component's file input only when the value carries its FileData
marker (``meta``), ``gr.Image`` takes a path without it, and ``gr.api`` endpoints get the raw
value. ``guard_file_inputs`` puts this check in front of every event's file inputs when the
app is built, so a new endpoint or tab is covered without anyone remembering to call it;
handlers call ``upload_path`` (the same check) to turn an argument into a path.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.errors import BadInputError
from mmdemo.ui.gradio_compat import ApiComponent, before_preprocess, upload_folder

HOW = (
    "upload the file: in Python send gradio_client.handle_file(path); over HTTP POST it to "
    "/gradio_api/upload and pass the path that returns, as "
    '{"path": <path>, "meta": {"_type": "gradio.FileData"}}'
)


def _refuse(role: str, why: str) -> BadInputError:
    return BadInputError(f"{role} must be a file uploaded to this server: {why}", fix=HOW)


def _shown(path: str) -> str:
    return repr(path if len(path) <= 60 else path[:57] + "...")


def checked_upload(path: str, role: str) -> str:
    """``path`` resolved, if it is a regular file inside the upload folder; else refused."""
    if "\x00" in path:
        raise _refuse(role, "the path holds a NUL character")
    given = Path(path)
    if not given.is_absolute():
        raise _refuse(role, f"{_shown(path)} is not the path of an upload")
    folder = Path(os.path.abspath(upload_folder()))
    root = Path(os.path.realpath(folder))
    real = Path(os.path.realpath(given))
    # both the path as written and the file it leads to must lie inside the upload folder
    written = Path(os.path.normpath(given))
    inside = written.is_relative_to(folder) or written.is_relative_to(root)
    if not (inside and real.is_relative_to(root)):
        raise _refuse(role, f"{_shown(path)} is a path on the server, not an upload")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise _refuse(role, f"{_shown(path)} does not exist (uploads expire)") from None
    if stat.S_ISDIR(mode):
        raise _refuse(role, f"{_shown(path)} is a folder")
    if not stat.S_ISREG(mode):
        raise _refuse(role, f"{_shown(path)} is not a regular file")
    return str(real)


def upload_path(upload: Any, role: str) -> str | None:
    """The checked server path of an uploaded file (a FileData, a ``{"path": ...}`` dict as
    ``handle_file`` sends, or the path string a UI component hands over), None for none."""
    if upload is None or upload == "":
        return None
    if isinstance(upload, FileData):
        path: Any = upload.path
    elif isinstance(upload, dict):
        path = upload.get("path")
        if path is None and upload.get("url"):
            raise _refuse(role, "a URL was sent instead of a file")
    else:
        path = upload
    if isinstance(path, Path):
        path = str(path)
    if not isinstance(path, str) or not path:
        raise _refuse(role, f"got {type(upload).__name__} {str(upload)[:40]!r}")
    return checked_upload(path, role)


def _check_payload(payload: Any, role: str, strings_allowed: bool) -> None:
    """Refuse ``payload`` (a named endpoint's file argument as the client sent it) unless
    every file in it is an upload; a plain string passes only where the parameter also takes
    text that is not a path (``/video_ask``'s video_id, which is never opened as a path)."""
    if isinstance(payload, list | tuple):
        for item in payload:
            _check_payload(item, role, strings_allowed=False)
    elif not (isinstance(payload, str) and strings_allowed):
        upload_path(payload, role)


def _check_files_in(value: Any, role: str) -> None:
    """Refuse every file object inside a widget's value (``{"path": ...}``, at any depth)
    that is not an upload; inline ``data:`` URLs carry their bytes and pass."""
    if isinstance(value, dict):
        if "path" in value or "url" in value:  # a file object
            path, url = value.get("path"), value.get("url")
            if path or (url and not str(url).startswith("data:")):
                upload_path(value, role)
            return
        for item in value.values():
            _check_files_in(item, role)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_files_in(item, role)


def _carries_files(component: Any) -> bool:
    try:
        return "FileData" in json.dumps(component.api_info())
    except (TypeError, ValueError, NotImplementedError):
        return False


def guard_file_inputs(demo: gr.Blocks) -> list[str]:
    """Check every file argument of every event of ``demo`` (the tabs' own events and the
    named endpoints) before Gradio opens it; returns the named endpoints' file parameters as
    ``endpoint.parameter``. A refused argument reaches the client as an error naming the fix.

    Gradio's own check needs a FileData marker the client may leave out (and ``gr.Image``
    never asks for it), and ``gr.api`` endpoints get raw values: this closes both."""
    info = demo.get_api_info(all_endpoints=True).get("named_endpoints", {})
    api_files: dict[int, tuple[str, bool]] = {}  # gr.api input id -> (parameter, takes text)
    for fn in demo.fns.values():
        params = info.get(f"/{fn.api_name}", {}).get("parameters", [])
        for component, param in zip(fn.inputs, params, strict=False):
            kind = str(param.get("python_type", {}).get("type", ""))
            if isinstance(component, ApiComponent) and "filepath" in kind:
                role = param.get("parameter_name") or "a file argument"
                api_files[component._id] = (role, "str" in kind.replace("filepath", ""))
    widgets = {
        c._id: f"the file given to {str(getattr(c, 'label', None) or type(c).__name__)[:40]!r}"
        for fn in demo.fns.values()
        for c in fn.inputs
        if not isinstance(c, ApiComponent) and _carries_files(c)
    }

    def check(block_fn: Any, inputs: list[Any]) -> None:
        for component, value in zip(block_fn.inputs, inputs, strict=False):
            try:
                if component._id in api_files:
                    role, strings_allowed = api_files[component._id]
                    if value is not None:
                        _check_payload(value, role, strings_allowed)
                elif component._id in widgets:
                    _check_files_in(value, widgets[component._id])
            except BadInputError as exc:
                raise gr.Error(str(exc), title="Not an upload") from exc

    before_preprocess(demo, check)
    return [
        f"{fn.api_name}.{role}"
        for fn in demo.fns.values()
        for c in fn.inputs
        if (role := api_files.get(c._id, ("", False))[0])
    ]
