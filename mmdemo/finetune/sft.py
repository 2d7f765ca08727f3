"""Supervised LoRA fine-tuning of a VLM on (image, prompt, answer) triples.

One loop in the nanoGPT manner: a config dataclass, ``get_lr(step)``, ``evaluate()`` under
``torch.no_grad()``. PEFT injects and saves the adapter; only the answer tokens are learned.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.finetune.data import Example
from mmdemo.models.adapters import write_metadata


@dataclass
class SFTConfig:
    steps: int = 300  # optimizer steps
    batch_size: int = 8
    lr: float = 3e-3  # peak learning rate (cosine decay to lr/10 after warmup)
    warmup: int = 20  # linear warm-up steps
    rank: int = 8  # LoRA rank
    alpha: int = 16  # LoRA scaling numerator
    dropout: float = 0.0
    # modules to adapt: the language model's attention and MLP projections (not the vision tower)
    target_modules: str = r".*(text_model|language_model).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    seed: int = 0
    log_every: int = 10
    history: list[tuple[int, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.rank < 1:
            raise BadInputError("steps, batch_size and rank must be at least 1")
        if not 0 < self.lr < 1:
            raise BadInputError(f"learning rate {self.lr} is outside (0, 1)")


def get_lr(step: int, cfg: SFTConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def chat_prompt(processor: Any, prompt: str, with_image: bool = True) -> str:
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": prompt}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True
    )


def end_of_turn(processor: Any) -> str:
    tok = processor.tokenizer
    for candidate in ("<end_of_utterance>", "<|im_end|>"):
        if candidate in tok.get_vocab():
            return candidate
    return tok.eos_token or ""


def build_batch(processor: Any, examples: Sequence[Example]) -> dict[str, Any]:
    """Tokenized batch whose labels are the answers only (prompt and padding masked)."""

    eot = end_of_turn(processor)
    prompts = [chat_prompt(processor, ex.prompt) for ex in examples]
    texts = [p + " " + ex.answer + eot for p, ex in zip(prompts, examples, strict=True)]
    images = [[ex.image] for ex in examples]
    tok = processor.tokenizer
    tok.padding_side = "right"
    batch = processor(text=texts, images=images, return_tensors="pt", padding=True)
    prompt_lens = [
        len(processor(text=[p], images=[[ex.image]])["input_ids"][0])
        for p, ex in zip(prompts, examples, strict=True)
    ]
    labels = batch["input_ids"].clone()
    for i, n in enumerate(prompt_lens):
        labels[i, :n] = -100
    labels[batch["attention_mask"] == 0] = -100
    batch["labels"] = labels
    return dict(batch)


def generate_answer(model: Any, processor: Any, example: Example, max_new_tokens: int = 24) -> str:
    import torch

    inputs = processor(
        text=[chat_prompt(processor, example.prompt)], images=[[example.image]], return_tensors="pt"
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[
        0
    ].strip()


def evaluate(model: Any, processor: Any, examples: Sequence[Example]) -> float:
    """Exact-match accuracy of greedy answers (case and surrounding space ignored)."""
    model.eval()
    hits = sum(
        generate_answer(model, processor, ex).lower() == ex.answer.lower() for ex in examples
    )
    return hits / max(1, len(examples))


def train_lora(
    model: Any,
    processor: Any,
    train: Sequence[Example],
    evalset: Sequence[Example],
    cfg: SFTConfig,
    out_dir: Path,
    meta: dict[str, Any],
    progress: Callable[[int, float], None] | None = None,
) -> dict[str, float]:
    """Train a LoRA adapter on ``model`` (left unchanged), save it with metadata in ``out_dir``."""
    import torch
    from peft import LoraConfig, get_peft_model

    if not train:
        raise BadInputError("the training set is empty")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    start = time.perf_counter()
    peft_model.train()
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = get_lr(step, cfg)
        batch = build_batch(processor, rng.sample(list(train), min(cfg.batch_size, len(train))))
        loss = peft_model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            cfg.history.append((step, loss.item()))
            if progress:
                progress(step, loss.item())
    accuracy = evaluate(peft_model, processor, evalset)
    out_dir = Path(out_dir)
    peft_model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)
    metrics = {
        "accuracy": round(accuracy, 3),
        "final_loss": round(cfg.history[-1][1], 4),
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    write_metadata(
        out_dir,
        {
            **meta,
            "metrics": metrics,
            "method": meta.get("method", "lora"),
            "rank": cfg.rank,
            "steps": cfg.steps,
        },
    )
    peft_model.unload()  # take the LoRA layers out again: the caller's model is unchanged
    return metrics
