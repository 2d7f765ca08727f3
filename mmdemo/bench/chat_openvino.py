"""bench chat's rows for the VLM's OpenVINO decode route (models/ov_rows.py, the CPU default):
the same chat answers through the app with the route on, beside the eager rows of the same
run, alone, with one LoRA adapter, and (in bench chat) four users' mixed-adapter batch."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mmdemo.bench.report import Table, ms


def openvino_service(model: Any, processor: Any, dtype: str, root: Path) -> Any:
    """A chat service whose VLM (a copy of ``model``) decodes on OpenVINO, or why not (str).
    Its steps are traced into ``root`` (the random model has no folder: a fresh trace)."""
    from mmdemo.bench.chat import _service
    from mmdemo.models.backends.vlm import VLMBundle
    from mmdemo.models.families import by_model_type
    from mmdemo.models.ov_decode import supported

    model = copy.deepcopy(model)
    why = supported(model)
    if why:
        return why
    from mmdemo.models.ov_rows import RowDecoders

    leaves = by_model_type("idefics3").lora_targets
    decoder = RowDecoders(model, root / "steps", None, leaves)
    bundle = VLMBundle(
        model, copy.deepcopy(processor), "idefics3", "smolvlm-256m", "cpu", dtype, decoder=decoder
    )
    bundle.processor.image_processor.do_image_splitting = False
    return _service(bundle, root / "home")


def openvino_rows(
    table: Table,
    model: Any,
    processor: Any,
    image: Any,
    dtype: str,
    tokens: int,
    limit: float,
    eager: tuple[float, float, str],
    root: Path,
) -> Any:
    """Rows: the chat on the OpenVINO route (time to first token, decode, fraction of the
    limit, against ``eager`` = (ttft, tok/s, answer) of the eager chat in this run), then one
    LoRA adapter answered eagerly and on the route. Returns the service (None: not run)."""
    from mmdemo.bench.chat import _answer, _service
    from mmdemo.finetune.random_adapter import random_adapter
    from mmdemo.models.backends.vlm import VLMBundle

    fast = openvino_service(model, processor, dtype, root / "openvino")
    label = f"{dtype}: **mmdemo chat, OpenVINO decode route (the CPU default)**"
    if isinstance(fast, str):
        table.add(label, "not run", fast)
        return None
    _answer(fast, image, 2)  # warm-up (compiles)
    runs = [_answer(fast, image, tokens) for _ in range(2)]
    best = max(runs, key=lambda r: r.tokens_per_s)
    same = "same answer as eager" if _text(fast, image, tokens) == eager[2] else "answer differs"
    table.add(
        f"{label}, time to first token / decode",
        f"{ms(best.ttft_s)} / {best.tokens_per_s:.1f} tok/s",
        f"{best.tokens_per_s / limit:.2f}x the limit; decode {best.tokens_per_s / eager[1]:.2f}x "
        f"eager; {same}",
    )
    adapter = random_adapter(model, root / "lora", seed=7, rank=16)
    plain = VLMBundle(
        copy.deepcopy(model), copy.deepcopy(processor), "idefics3", "smolvlm-256m", "cpu", dtype
    )
    plain.processor.image_processor.do_image_splitting = False
    slow = _service(plain, root / "eager-lora")
    rates, texts = [], []
    for chat in (slow, fast):
        chat.store.install(adapter, "lora16")
        _answer(chat, image, 2, "lora16")  # warm-up: loads the adapter (and the LoRA step)
        rates.append(max(_answer(chat, image, tokens, "lora16").tokens_per_s for _ in range(2)))
        texts.append(_text(chat, image, tokens, "lora16"))
    table.add(
        f"{dtype}: one LoRA adapter (r=16, attention layers), decode eager / OpenVINO route",
        f"{rates[0]:.1f} / {rates[1]:.1f} tok/s",
        f"{rates[1] / limit:.2f}x the limit; {rates[1] / rates[0]:.2f}x eager; "
        + ("same answer" if texts[0] == texts[1] else "answers differ"),
    )
    return fast


def _text(chat: Any, image: Any, tokens: int, adapter: str = "base") -> str:
    from mmdemo.bench.chat import PROMPT, _forced
    from mmdemo.flows.chat import ChatSession

    return list(chat.stream(ChatSession(), PROMPT, [image], adapter, _forced(tokens)))[-1].text
