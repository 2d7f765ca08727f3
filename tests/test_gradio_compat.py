"""The Gradio internals mmdemo relies on (mmdemo/ui/gradio_compat.py), pinned to the version
they were read from. When this fails after an upgrade, re-read each one in the new Gradio:
``Blocks.preprocess_data`` (where a request's values become a handler's arguments: the upload
check runs just before it), ``gradio.utils.get_upload_folder`` and the ``gr.api`` input class.
"""

from __future__ import annotations

import inspect

import gradio as gr


def test_gradio_is_the_version_the_internals_were_read_from() -> None:
    from mmdemo.ui.gradio_compat import READ_FOR

    assert gr.__version__.startswith(READ_FOR + "."), (
        f"Gradio {gr.__version__}: re-check mmdemo/ui/gradio_compat.py, then set READ_FOR"
    )


def test_the_internals_have_the_shape_we_call() -> None:
    from gradio.components.api_component import Api

    params = list(inspect.signature(gr.Blocks.preprocess_data).parameters)
    assert params[:4] == ["self", "block_fn", "inputs", "state"]
    assert inspect.iscoroutinefunction(gr.Blocks.preprocess_data)
    assert Api(value=None, _api_info={}).preprocess({"path": "x"}) == {"path": "x"}


def test_upload_folder_follows_gradio_temp_dir(monkeypatch, tmp_path) -> None:
    from mmdemo.ui.gradio_compat import upload_folder

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    assert upload_folder() == tmp_path


def test_uvicorn_reads_forwarded_allow_ips_when_its_config_is_made() -> None:
    """raw_client_addresses() relies on uvicorn.Config reading FORWARDED_ALLOW_IPS."""
    import uvicorn

    from mmdemo.ui.gradio_compat import raw_client_addresses

    with raw_client_addresses():
        config = uvicorn.Config(app=lambda *a: None)
    assert config.forwarded_allow_ips in ("", [], None) or list(config.forwarded_allow_ips) == []
