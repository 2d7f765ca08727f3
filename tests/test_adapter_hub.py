"""Adapters from the Hugging Face Hub (``org/repo@revision``): only the config and the
safetensors weights are fetched, from the commit the revision pointed at, then checked like an
upload. The Hub is a local fake (``tests.helpers.FakeHub``): no test reaches the network."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmdemo.config import Settings
from mmdemo.errors import AdapterError, BadInputError, NotAllowedError
from mmdemo.flows.adapter_ops import AdapterOps
from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models.files import LOCKS
from mmdemo.models.manager import ModelManager
from tests.bad_inputs import lora_config, wrong_base_weights
from tests.helpers import FakeHub, fake_hub, home_for

RED = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"
FILES = ["adapter_config.json", "adapter_model.safetensors"]


@pytest.fixture(scope="module")
def chat(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("hub-home")
    manager = ModelManager(home_for(tiny_settings, home))
    yield ChatService.standalone(manager)
    manager.unload_all()


@pytest.fixture(scope="module")
def repos(chat: ChatService, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Hub repos as folders: the built-in pirate adapter's files beside pickles a careless
    repo also holds, one with pickled weights only, one for GPT-2, one far too big."""
    root = tmp_path_factory.mktemp("repos")
    pirate = root / "pirate"
    pirate.mkdir()
    for name in FILES:
        shutil.copyfile(chat.store.get("pirate").path / name, pirate / name)
    (pirate / "adapter_model.bin").write_bytes(b"\x80\x04not loaded")  # a pickle: never fetched
    (pirate / "training_args.pt").write_bytes(b"\x80\x04not loaded")
    (pirate / "README.md").write_text("a pirate adapter")
    pickled = root / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_bytes(lora_config())
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    gpt2 = root / "gpt2"
    gpt2.mkdir()
    (gpt2 / "adapter_config.json").write_bytes(lora_config())
    (gpt2 / "adapter_model.safetensors").write_bytes(wrong_base_weights())
    huge = root / "huge"
    huge.mkdir()
    shutil.copyfile(pirate / FILES[0], huge / FILES[0])
    (huge / FILES[1]).write_bytes(b"\0" * (2 * 2**20 + 1))
    return {f"someone/{p.name}": p for p in (pirate, pickled, gpt2, huge)}


def answer(chat: ChatService, adapter: str) -> str:
    gen = GenerationSettings(max_new_tokens=12, greedy=True)
    *_, last = chat.stream(ChatSession(), "What is this?", [RED], adapter, gen)
    return last.text


def test_a_hub_adapter_is_fetched_from_its_pinned_commit_and_answers(
    chat: ChatService, repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = fake_hub(monkeypatch, repos)
    info = AdapterOps(chat).from_hub("someone/pirate@v1.0", "hub-pirate")
    try:
        # asked what v1.0 holds, then fetched exactly that commit: config + safetensors only
        assert [c["revision"] for c in hub.calls] == ["v1.0", FakeHub.commit]
        assert all(c["patterns"] == FILES for c in hub.calls)
        files = sorted(p.name for p in info.path.iterdir())
        assert files == [*FILES, "mmdemo.json"], "only the adapter's files are kept"
        entry = next(a for a in chat.adapters_summary() if a["name"] == "hub-pirate")
        assert entry["source"] == f"hub:someone/pirate@{FakeHub.commit}"
        meta = json.loads((info.path / "mmdemo.json").read_text())
        assert (meta["hub_repo"], meta["hub_revision"]) == ("someone/pirate", "v1.0")
        assert "hub-pirate" in chat.resident_adapters(), "checked and loaded like an upload"
        # the same weights as the built-in pirate: the same answer, not the base model's
        assert answer(chat, "hub-pirate") == answer(chat, "pirate") != answer(chat, "base")
    finally:
        chat.delete_adapter("hub-pirate")


def test_the_repo_name_is_the_default_name_and_main_the_default_revision(
    chat: ChatService, repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = fake_hub(monkeypatch, repos)
    chat.store.get("pirate")  # the built-in one keeps its name: this one must take another
    with pytest.raises(AdapterError, match="'pirate' already exists"):
        AdapterOps(chat).from_hub("someone/pirate")
    assert hub.calls == [], "a clash of names is refused before any download"
    info = AdapterOps(chat).from_hub("hf://someone/pirate", "pirate-main")
    try:
        assert hub.calls[0]["revision"] == "main"
        assert info.source.endswith(FakeHub.commit)
    finally:
        chat.delete_adapter("pirate-main")


@pytest.mark.parametrize(
    ("repo", "refusal"),
    [
        ("someone/pickled", r"safetensors only.*pickle"),
        ("someone/huge", r"2 MB; the limit is 1 MB"),
        ("someone/missing", r"no adapter someone/missing@main that can be read"),
    ],
)
def test_repos_without_safetensors_or_too_big_are_refused_before_downloading(
    chat: ChatService,
    repos: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    repo: str,
    refusal: str,
) -> None:
    hub = fake_hub(monkeypatch, repos)
    before = chat.store.names()
    ops = AdapterOps(chat, chat.settings.replace(max_upload_mb=1))
    with pytest.raises(AdapterError, match=refusal):
        ops.from_hub(repo, "refused")
    assert hub.downloads() == [], "nothing was downloaded"
    assert chat.store.names() == before
    debris = [p.name for p in chat.store.root.iterdir() if p.name.startswith(".") and p.is_dir()]
    assert debris in ([], [LOCKS]), "no half-made adapter is left behind"


def test_an_adapter_for_another_base_model_is_refused_with_its_base(
    chat: ChatService, repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub(monkeypatch, repos)
    before = chat.store.names()
    with pytest.raises(AdapterError, match=r"does not have \(it was made for gpt2\)"):
        AdapterOps(chat).from_hub("someone/gpt2@main", "gpt2-lora")
    assert chat.store.names() == before


def test_hosted_mode_refuses_the_hub_naming_the_setting(
    chat: ChatService, repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = fake_hub(monkeypatch, repos)
    hosted = chat.settings.replace(hosted=True)
    with pytest.raises(NotAllowedError, match=r"turned off in hosted mode \(MMDEMO_HOSTED"):
        AdapterOps(chat, hosted).from_hub("someone/pirate@main", "x")
    assert hub.calls == []


@pytest.mark.parametrize(
    "hub_id", ["pirate", "/etc/passwd", "someone/../etc", "a/b/c", "someone/x@", "x@main"]
)
def test_what_is_not_a_hub_id_is_refused(
    chat: ChatService, repos: dict[str, Path], monkeypatch: pytest.MonkeyPatch, hub_id: str
) -> None:
    hub = fake_hub(monkeypatch, repos)
    with pytest.raises(BadInputError, match="is not a Hub repo id"):
        AdapterOps(chat).from_hub(hub_id, "x")
    assert hub.calls == []
