"""ModelManager: lazy, once-only, locked loading; unload; errors that name cause and fix."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

import pytest

from mmdemo.config import Settings
from mmdemo.errors import MissingDependencyError, MMDemoError, ModelUnavailableError
from mmdemo.models.manager import LoadContext, LoadedModel, ModelManager


class Model:
    """Stands in for a heavy model in the fast tests."""


def counting_loader(calls: list[str], delay: float = 0.0):
    def load(ctx: LoadContext) -> LoadedModel:
        calls.append(ctx.model_id)
        time.sleep(delay)
        return LoadedModel(handle=Model(), device=ctx.device, dtype=ctx.dtype, params=3, nbytes=12)

    return load


def test_nothing_loads_until_first_use(tiny_settings: Settings) -> None:
    calls: list[str] = []
    manager = ModelManager(tiny_settings, loaders={"vlm": counting_loader(calls)})
    assert calls == []
    assert [s.state for s in manager.status()] == ["not loaded"]
    first = manager.get("vlm")
    assert manager.get("vlm") is first
    assert calls == ["tiny:smolvlm"]
    (status,) = manager.status()
    assert (status.state, status.params, status.nbytes, status.loads) == ("loaded", 3, 12, 1)


def test_concurrent_first_use_loads_once(tiny_settings: Settings) -> None:
    calls: list[str] = []
    manager = ModelManager(tiny_settings, loaders={"vlm": counting_loader(calls, delay=0.3)})
    got: list[object] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        got.append(manager.get("vlm"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(got) == 8 and all(g is got[0] for g in got)


def test_state_is_loading_while_a_load_runs(tiny_settings: Settings) -> None:
    started = threading.Event()
    release = threading.Event()

    def slow(ctx: LoadContext) -> LoadedModel:
        started.set()
        release.wait(5)
        return LoadedModel(handle=Model(), device="cpu", dtype="float32")

    manager = ModelManager(tiny_settings, loaders={"vlm": slow})
    t = threading.Thread(target=manager.get, args=("vlm",))
    t.start()
    started.wait(5)
    assert manager.status()[0].state == "loading"
    release.set()
    t.join()
    assert manager.status()[0].state == "loaded"


def test_unload_frees_the_model_and_next_use_reloads(tiny_settings: Settings) -> None:
    calls: list[str] = []
    manager = ModelManager(tiny_settings, loaders={"vlm": counting_loader(calls)})
    ref = weakref.ref(manager.get("vlm"))
    assert manager.unload("vlm") is True
    gc.collect()
    assert ref() is None
    assert manager.status()[0].state == "not loaded"
    assert manager.unload("vlm") is False
    manager.get("vlm")
    assert len(calls) == 2 and manager.status()[0].loads == 2


def test_real_tiny_vlm_loads_once_under_concurrency_and_unloads(manager: ModelManager) -> None:
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(manager.get("vlm"))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is results[0] for r in results)
    status = {s.backend: s for s in manager.status()}["vlm"]
    assert status.loads == 1 and status.state == "loaded"
    width = 2 if status.dtype == "bfloat16" else 4
    assert status.params > 0 and status.nbytes >= status.params * width and status.device == "cpu"
    model_ref = weakref.ref(results[0].model)
    results.clear()
    manager.unload("vlm")
    gc.collect()
    assert model_ref() is None


def test_loader_failure_is_wrapped_and_other_backends_keep_working(tiny_settings: Settings) -> None:
    def broken(ctx: LoadContext) -> LoadedModel:
        raise RuntimeError("weights are corrupt")

    calls: list[str] = []
    manager = ModelManager(tiny_settings, loaders={"vlm": broken, "clip": counting_loader(calls)})
    with pytest.raises(ModelUnavailableError) as err:
        manager.get("vlm")
    assert "vlm" in str(err.value) and "weights are corrupt" in str(err.value)
    assert err.value.fix
    assert manager.get("clip") is not None
    rows = {s.backend: s for s in manager.status()}
    assert rows["vlm"].state == "error" and "corrupt" in rows["vlm"].error
    assert rows["clip"].state == "loaded"


def test_missing_package_names_the_install_command(tiny_settings: Settings) -> None:
    def needs_open_clip(ctx: LoadContext) -> LoadedModel:
        raise ModuleNotFoundError("No module named 'open_clip'", name="open_clip")

    manager = ModelManager(tiny_settings, loaders={"clip": needs_open_clip})
    with pytest.raises(MissingDependencyError, match="pip install open_clip_torch"):
        manager.get("clip")


def test_unknown_backend_and_empty_model_id_are_refused(manager: ModelManager) -> None:
    with pytest.raises(MMDemoError, match="unknown backend"):
        manager.get("radar")
    with pytest.raises(MMDemoError, match="empty model id"):
        manager.set_model("vlm", "  ")


def test_set_model_switches_the_backend(manager: ModelManager) -> None:
    first = manager.get("vlm")
    assert first.family == "idefics3"
    manager.set_model("vlm", "tiny:qwen2vl")
    assert not manager.is_loaded("vlm")
    assert manager.get("vlm").family == "qwen2_vl"
    assert {s.backend: s.model_id for s in manager.status()}["vlm"] == "tiny:qwen2vl"


def test_model_neither_cached_nor_reachable_gives_one_clear_message(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty Hugging Face cache and a Hub endpoint nobody listens on.
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    settings = tiny_settings.replace(profile="cpu", vlm="", clip="tiny:clip")
    manager = ModelManager(settings)
    with pytest.raises(ModelUnavailableError) as err:
        manager.get("vlm")
    message = str(err.value)
    assert "HuggingFaceTB/SmolVLM-256M-Instruct" in message
    assert "profile 'cpu'" in message
    assert "python -m mmdemo models download vlm" in message
    assert "MMDEMO_PROFILE=tiny" in message
    # the rest of the app keeps working
    assert manager.get("clip").embed_dim > 0
    assert {s.backend: s.state for s in manager.status()}["vlm"] == "error"


def test_missing_local_folder_is_named(tiny_settings: Settings, tmp_path: Path) -> None:
    manager = ModelManager(tiny_settings.replace(vlm=str(tmp_path / "nowhere")))
    with pytest.raises(ModelUnavailableError, match="nowhere"):
        manager.get("vlm")
