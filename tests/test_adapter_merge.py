"""Merging adapters (PEFT's add_weighted_adapter) into a new adapter the arena shows beside
its parents, and exporting base + adapter as one transformers model (merge_and_unload) that
answers like the served pair. The parents are the built-in trained adapters, whose answers
differ: the pirate talks like a pirate, the colour namer names the colour."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mmdemo.config import Settings
from mmdemo.errors import AdapterError, BadInputError, NotAllowedError
from mmdemo.flows.adapter_ops import AdapterOps
from mmdemo.flows.arena import ArenaService
from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models.manager import ModelManager
from tests.helpers import home_for, make_adapter

IMAGES = Path(__file__).resolve().parents[1] / "assets" / "images"
RED = IMAGES / "red-circle.png"
DEMO_IMAGES = sorted(p for p in IMAGES.iterdir() if p.is_file())
PARENTS = ["pirate", "color-namer"]


@pytest.fixture(scope="module")
def chat(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    manager = ModelManager(home_for(tiny_settings, tmp_path_factory.mktemp("merge-home")))
    yield ChatService.standalone(manager)
    manager.unload_all()


def answer(chat: ChatService, adapter: str, image: Path = RED, text: str = "Hi") -> str:
    gen = GenerationSettings(max_new_tokens=16, greedy=True)
    *_, last = chat.stream(ChatSession(), text, [image], adapter, gen)
    return last.text


def test_a_linear_merge_weighted_1_0_answers_like_the_first_parent(chat: ChatService) -> None:
    ops = AdapterOps(chat)
    pirate, colors = answer(chat, "pirate"), answer(chat, "color-namer")
    assert pirate != colors, "the parents must answer differently for this test to mean much"
    first = ops.merge(PARENTS, [1, 0], "linear", name="only-pirate")
    second = ops.merge(PARENTS, [0, 1], "linear", name="only-colors")
    assert answer(chat, "only-pirate") == pirate
    assert answer(chat, "only-colors") == colors
    assert first.source == "merge:linear(pirate, color-namer)"
    assert first.method == "merge (linear)" and first.peft_type == "LORA"
    assert "pirate 1, color-namer 0" in first.description
    assert second.base_model_type == "idefics3"

    # the arena offers the merge beside its parents, and its column answers like parent 1
    arena = ArenaService(chat)
    assert {*PARENTS, "only-pirate", "only-colors"} <= set(arena.choices())
    gen = GenerationSettings(max_new_tokens=16, greedy=True)
    *_, result = arena.stream(RED, "Hi", [*PARENTS, "only-pirate", "only-colors"], gen)
    texts = {c.adapter: c.text for c in result.columns}
    assert texts["only-pirate"] == texts["pirate"] and texts["only-colors"] == texts["color-namer"]


def test_ties_and_dare_ties_make_adapters_and_dare_repeats(chat: ChatService) -> None:
    from safetensors.torch import load_file

    ops = AdapterOps(chat)
    ties = ops.merge(PARENTS, [1, 1], "ties", 0.5, name="ties-merge")
    assert "density 0.5" in ties.description and answer(chat, "ties-merge")
    dares = [ops.merge(PARENTS, [1, 1], "dare_ties", 0.3, name=f"dare-{i}") for i in (1, 2)]
    first, second = (load_file(str(d.path / "adapter_model.safetensors")) for d in dares)
    assert first.keys() == second.keys()
    assert all(first[k].equal(second[k]) for k in first), "the same merge twice, the same weights"
    tied = load_file(str(ties.path / "adapter_model.safetensors"))
    assert any(not tied[k].equal(first[k]) for k in first), "ties and dare_ties differ"


def test_merges_that_cannot_work_are_refused_before_any_weights_move(
    chat: ChatService, tmp_path: Path
) -> None:
    from mmdemo.models.tiny.vlm import random_model, smolvlm_parts

    ops = AdapterOps(chat)
    model = random_model(smolvlm_parts()[0])  # the tiny VLM's architecture, untouched by PEFT
    chat.store.install(make_adapter(model, tmp_path / "r4", seed=3, rank=4), "rank-four")
    before = chat.store.names()
    cases = [
        ((["pirate", "rank-four"], [1, 1], "linear"), AdapterError, "one rank"),
        ((["pirate"], [1], "linear"), BadInputError, "2 to 8 adapters"),
        ((PARENTS, [1], "linear"), BadInputError, "1 weight"),
        ((PARENTS, [1, 1], "svd"), BadInputError, "not one of linear, ties, dare_ties"),
        ((PARENTS, [0, 0], "linear"), BadInputError, "every weight is 0"),
        ((["base", "pirate"], [1, 1], "linear"), BadInputError, "base is not an adapter"),
        ((["pirate", "nope"], [1, 1], "linear"), AdapterError, "no adapter called 'nope'"),
    ]
    for args, kind, why in cases:
        with pytest.raises(kind, match=why):
            ops.merge(*args, name="refused")
    with pytest.raises(BadInputError, match=r"density 1.5 is outside"):
        ops.merge(PARENTS, [1, 1], "ties", 1.5, name="refused")
    with pytest.raises(AdapterError, match="'pirate' already exists"):
        ops.merge(PARENTS, [1, 1], name="pirate")
    hosted = chat.settings.replace(hosted=True, allow_training=False)
    with pytest.raises(NotAllowedError, match="adding a merged adapter is turned off"):
        AdapterOps(chat, hosted).merge(PARENTS, [1, 1], name="refused")
    assert chat.store.names() == before


def exported_answers(folder: Path, chat: ChatService, text: str) -> dict[str, str]:
    """Greedy answers of the exported folder, loaded by transformers alone (no PEFT), to
    ``text`` about each demo image, prompted as the chat tab prompts."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from mmdemo.flows.chat_local import model_inputs
    from mmdemo.flows.conversation import ChatTurn, build_messages
    from mmdemo.models.backends.vlm import configure_images

    served = chat.manager.get("vlm")
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    assert model.dtype == served.model.dtype  # saved in the dtype it is served in
    # the served processor's image tiling (off on a CPU), as the server would configure it
    configure_images(processor, served.family, served.processor.image_processor.do_image_splitting)
    bundle = SimpleNamespace(processor=processor, device="cpu", family=served.family)
    answers = {}
    for path in DEMO_IMAGES:
        images = chat.prepare_images([path])
        messages, images = build_messages([ChatTurn(text, images, [str(path)])], "")
        inputs = model_inputs(bundle, messages, images)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        new = out[0, inputs["input_ids"].shape[-1] :]
        answers[path.name] = processor.tokenizer.decode(new, skip_special_tokens=True).strip()
    return answers


def test_the_exported_model_answers_like_the_served_base_and_adapter(
    chat: ChatService, tmp_path: Path
) -> None:
    text = "Describe the picture."
    result = AdapterOps(chat).export_merged("pirate", tmp_path / "out")
    assert result.archive == tmp_path / "out" / "pirate-merged.zip"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["pirate-merged.zip"]
    with zipfile.ZipFile(result.archive) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "unzipped")
    for name in ("model.safetensors", "config.json", "tokenizer.json", "processor_config.json"):
        assert f"pirate-merged/{name}" in names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    folder = tmp_path / "unzipped" / "pirate-merged"
    assert not (folder / "adapter_config.json").exists(), "a plain model, not an adapter"

    exported = exported_answers(folder, chat, text)
    served = {p.name: answer(chat, "pirate", p, text) for p in DEMO_IMAGES}
    base = {p.name: answer(chat, "base", p, text) for p in DEMO_IMAGES}
    assert exported == served
    assert all(exported[k] != base[k] for k in base), "the adapter's weights are in the export"


def test_exports_are_refused_in_hosted_mode_and_for_base(chat: ChatService, tmp_path: Path) -> None:
    hosted = chat.settings.replace(hosted=True)
    with pytest.raises(NotAllowedError, match=r"exporting a merged model.*MMDEMO_HOSTED"):
        AdapterOps(chat, hosted).export_merged("pirate", tmp_path)
    with pytest.raises(BadInputError, match="base has no adapter"):
        AdapterOps(chat).export_merged("base", tmp_path)
    assert not list(tmp_path.iterdir())
