"""Every VLM family with a tiny build, through the app's own paths: it loads with its class,
chat template and CPU image budget, chats (greedy, streamed), trains 2 steps in the studio,
hot-swaps the adapter it trained, answers side by side in the arena, shares padded batches
where the family allows it, and the how-it-works anatomy finds its three parts. CogVLM2 is
refused outside the gpu profile and without trust_remote_code, before any file is read."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from mmdemo.config import Settings
from mmdemo.errors import ModelUnavailableError
from mmdemo.finetune.config import TrainConfig
from mmdemo.finetune.events import Step
from mmdemo.finetune.progress import EventLog, StopSwitch
from mmdemo.finetune.run import RunEnv, RunResult, train_adapter
from mmdemo.flows.arena import ArenaService
from mmdemo.flows.batching import BATCH_FAMILIES, Batcher, BatchRequest
from mmdemo.flows.chat import ChatService, ChatSession
from mmdemo.flows.chat_local import model_inputs
from mmdemo.flows.generation import GenerationSettings, eos_token_ids
from mmdemo.flows.how.service import HowItWorks
from mmdemo.models.families import CPU_MAX_PIXELS, FAMILIES, Family
from mmdemo.models.manager import ModelManager

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"
RED_CIRCLE = ASSETS / "red-circle.png"
QUESTION = "What color is the shape?"
GREEDY = GenerationSettings(max_new_tokens=4, greedy=True)
TINY = [key for key, f in FAMILIES.items() if f.tiny]


@dataclass
class Loaded:
    family: Family
    settings: Settings
    manager: ModelManager
    chat: ChatService

    @property
    def bundle(self) -> Any:
        return self.manager.get("vlm")

    def answer(self, adapter: str = "base", text: str = QUESTION) -> Any:
        return list(self.chat.stream(ChatSession(), text, [RED_CIRCLE], adapter, GREEDY))


@pytest.fixture(scope="module", params=TINY)
def loaded(
    request: pytest.FixtureRequest,
    family_builds: dict[str, str],
    tiny_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Loaded]:
    """The family's tiny build loaded as the app loads its VLM, with its own adapter store."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest on one thread
    home = tmp_path_factory.mktemp(f"home-{request.param}")
    (home / "models").mkdir()
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    # float32: a tiny build's near-tied tokens do not flip between a batch and a solo answer
    # (bf16 is what `python -m mmdemo bench families` measures)
    settings = tiny_settings.replace(home=home, vlm=family_builds[request.param], dtype="float32")
    manager = ModelManager(settings)
    yield Loaded(FAMILIES[request.param], settings, manager, ChatService.standalone(manager))
    manager.unload_all()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Any]:
    """A LoRA trained 2 steps on the family's tiny build into the app's adapter store (the
    Fine-tune tab's run, in this process), at a learning rate high enough to move answers."""
    run_dir = tmp_path_factory.mktemp(f"run-{loaded.family.key}")
    cfg = TrainConfig(
        name="two-steps",
        model=loaded.settings.vlm,
        steps=2,
        batch_size=2,
        scale=0.02,
        lr=0.2,
        warmup=0,
        score_test=False,
    )
    log = EventLog(run_dir / "events.jsonl")
    return train_adapter(cfg, RunEnv(loaded.settings, run_dir, log, StopSwitch())), log


def test_loads_as_its_class_with_its_template_and_cpu_image_budget(loaded: Loaded) -> None:
    bundle, family = loaded.bundle, loaded.family
    assert bundle.family in family.model_types
    assert type(bundle.model).__name__ == family.architecture
    prompt = bundle.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True,
    )
    assert "hi" in prompt and prompt != "hi"

    def image_tokens(size: tuple[int, int]) -> int:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "?"}]}]
        inputs = model_inputs(bundle, messages, [Image.new("RGB", size, "navy")])
        image_id = bundle.model.config.image_token_id
        return int((inputs["input_ids"] == image_id).sum())

    small, photo = image_tokens((16, 16)), image_tokens((1600, 1200))
    assert small > 0
    if family.images == "pixels":  # a big photo is scaled into the pixel budget
        assert small < photo <= CPU_MAX_PIXELS // 28**2
    else:  # one tile, as for a thumbnail (tiling is off on a CPU), or the fixed input size
        assert photo == small


def test_training_batches_learn_only_the_answers(loaded: Loaded) -> None:
    """The family's template renders each exchange; only the answer (and its end-of-turn
    marker) is learned, also when the batch pads the shorter example."""
    from mmdemo.finetune.collate import IGNORE, Collator
    from mmdemo.finetune.synthetic import synthetic_split

    examples = synthetic_split("train", scenes=2)[:2]
    examples[1] = dataclasses.replace(examples[1], prompt=examples[1].prompt + " Answer briefly.")
    collator = Collator(loaded.bundle.processor, with_images=True)
    batch = collator(examples)
    assert batch["attention_mask"][0].sum() != batch["attention_mask"][1].sum(), "padded"
    for row, example in enumerate(examples):
        learned = batch["input_ids"][row][batch["labels"][row] != IGNORE]
        text = collator.tokenizer.decode(learned, skip_special_tokens=True)
        assert text.strip() == example.answer


def test_chats_greedy_and_streams(loaded: Loaded) -> None:
    loaded.chat.engine.stream_interval = 0  # every token
    updates = loaded.answer()
    final = updates[-1].metrics
    assert len(updates) >= 2 and all(u.metrics is None for u in updates[:-1])
    assert 0 < final.tokens <= GREEDY.max_new_tokens and final.adapter == "base"
    assert loaded.answer()[-1].text == updates[-1].text, "greedy answers repeat"


def test_trains_two_steps_into_the_store_on_the_family_targets(
    loaded: Loaded, trained: tuple[RunResult, Any]
) -> None:
    from safetensors import safe_open

    result, log = trained
    steps = [e for e in log.events if isinstance(e, Step)]
    assert [s.step for s in steps] == [1, 2] and all(s.loss == s.loss for s in steps)
    info = loaded.chat.store.get("two-steps")
    assert info.base_model_type == loaded.bundle.family
    with safe_open(str(result.path / "adapter_model.safetensors"), framework="pt") as f:
        layers = {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in f.keys()}  # noqa: SIM118
    assert layers == set(loaded.family.lora_targets)


def test_the_trained_adapter_hot_swaps_and_answers_differently(
    loaded: Loaded, trained: tuple[RunResult, Any]
) -> None:
    """The adapter trained on the running app is served without reloading the base, its
    greedy answer differs from base (as tokens: a tiny build's answer may be all newlines or
    end at once, which reads as empty text), and base answers as before afterwards."""
    import torch

    bundle = loaded.bundle
    model = bundle.adapters.base
    assert loaded.answer("two-steps")[-1].metrics.adapter == "two-steps"
    assert bundle.adapters.base is model, "the base model was not reloaded"
    content = [{"type": "image"}, {"type": "text", "text": QUESTION}]
    images = loaded.chat.prepare_images([RED_CIRCLE])
    inputs = model_inputs(bundle, [{"role": "user", "content": content}], images)

    def answer_tokens(adapter: str) -> list[int]:
        info = loaded.chat.adapter_info(adapter)
        with bundle.adapters.pin((info,)) as pinned, torch.inference_mode():
            out = pinned.model.generate(**inputs, **GREEDY.generate_kwargs())
        return out[0, inputs["input_ids"].shape[1] :].tolist()

    base = answer_tokens("base")
    assert answer_tokens("two-steps") != base
    assert answer_tokens("base") == base, "base answers again once the adapter is unpinned"


def test_arena_answers_base_and_adapter_in_one_mixed_batch(
    loaded: Loaded, trained: tuple[RunResult, Any]
) -> None:
    arena = ArenaService(loaded.chat)
    final = list(arena.stream(RED_CIRCLE, QUESTION, ["base", "two-steps"], GREEDY))[-1]
    assert final.done and final.mode.startswith("one mixed-adapter batch")
    base, tuned = (c.text for c in final.columns)
    assert base == loaded.answer()[-1].text
    assert tuned == loaded.answer("two-steps")[-1].text


def test_concurrent_requests_share_a_padded_batch_where_the_family_allows_it(
    loaded: Loaded, trained: tuple[RunResult, Any]
) -> None:
    family, bundle = loaded.family, loaded.bundle
    if not family.mixed_batch:
        assert bundle.family not in BATCH_FAMILIES and family.serial_reason
        return
    assert bundle.family in BATCH_FAMILIES
    images = loaded.chat.prepare_images([RED_CIRCLE])
    asks = [  # different lengths (left padding), with and without an image, two adapters
        ("two-steps", QUESTION, images),
        ("base", "Describe the picture in detail, please.", images),
        ("two-steps", "Hello!", []),
    ]
    requests = []
    for adapter, text, imgs in asks:
        content = [{"type": "image"}] * len(imgs) + [{"type": "text", "text": text}]
        inputs = model_inputs(bundle, [{"role": "user", "content": content}], imgs)
        info = loaded.chat.adapter_info(adapter)
        eos = eos_token_ids(bundle.model, bundle.tokenizer)
        requests.append(BatchRequest.make(inputs, info, GREEDY, threading.Event(), eos))
    batcher = Batcher(bundle, window_s=60.0, max_rows=len(requests))  # starts once all wait
    for request in requests:
        batcher.submit(request)
    for request in requests:
        list(request.updates(0.0))
        assert request.error is None and request.rows == len(requests)
    for request, (adapter, text, imgs) in zip(requests, asks, strict=True):
        solo = list(loaded.chat.stream(ChatSession(), text, imgs, adapter, GREEDY))[-1].text
        batched = bundle.tokenizer.decode(request.row.tokens, skip_special_tokens=True)
        assert batched.strip() == solo, f"{adapter}: {text}"


def test_how_it_works_anatomy_lists_the_three_parts(loaded: Loaded) -> None:
    parts = {
        p["key"]: p for p in HowItWorks(loaded.settings, loaded.manager).model_parts()["parts"]
    }
    for key, name in zip(("vision", "projector", "language"), loaded.family.parts, strict=True):
        assert parts[key]["params"] > 0, key
        assert parts[key]["module"].rsplit(".", 1)[-1] == name, key


def test_every_family_is_listed_with_its_state(loaded: Loaded) -> None:
    from mmdemo.flows.completions import model_list
    from mmdemo.flows.families import family_states

    loaded.bundle  # noqa: B018  (loads the VLM)
    states = {f.key: f for f in family_states(loaded.manager)}
    assert list(states) == list(FAMILIES)
    assert states[loaded.family.key].state == "loaded" and states[loaded.family.key].selected
    assert states["cogvlm2"].state == "refused" and "gpu profile" in states["cogvlm2"].note
    assert all(
        s.state == "available" for k, s in states.items() if k not in ("cogvlm2", loaded.family.key)
    )
    base = model_list(loaded.chat)[0]["metadata"]
    assert base["family"] == loaded.family.key and base["state"] == "loaded"


def test_cli_lists_every_family(loaded: Loaded, capsys: pytest.CaptureFixture[str]) -> None:
    from mmdemo.cli import main

    home = str(loaded.settings.home)
    assert main(["--profile", "tiny", "--home", home, "models", "families", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == list(FAMILIES)
    assert rows[loaded.family.key]["tiny_id"] == loaded.settings.vlm


@pytest.mark.parametrize(
    ("profile", "trust", "says"),
    [
        ("tiny", True, "gpu profile"),
        ("cpu", True, "gpu profile"),
        ("gpu", False, "trust_remote_code"),
    ],
)
def test_cogvlm2_is_refused_before_any_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str, trust: bool, says: str
) -> None:
    import mmdemo.models.backends.vlm as vlm

    def no_files(*args: Any) -> None:
        raise AssertionError("the refusal must come before any file is looked for")

    monkeypatch.setattr(vlm, "resolve_model_dir", no_files)
    settings = Settings(
        profile=profile, home=tmp_path, device="cpu", vlm_family="cogvlm2", trust_remote_code=trust
    )
    manager = ModelManager(settings)
    assert manager.model_id("vlm") == "THUDM/cogvlm2-llama3-chat-19B"
    with pytest.raises(ModelUnavailableError, match=says) as refused:
        manager.get("vlm")
    assert refused.value.fix and "MMDEMO_" in refused.value.fix
    status = next(s for s in manager.status() if s.backend == "vlm")
    assert status.state == "error" and says in status.error
