"""How much a model prefers the chosen answer of a preference pair: the log-probability it gives
each answer after the prompt (the chat template the app serves with), and the scores DPO is
judged by on held-out pairs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from mmdemo.finetune.collate import IGNORE, Collator
from mmdemo.finetune.data import Example


def answer_logps(
    model: Any,
    collator: Collator,
    examples: Sequence[Example],
    device: str,
    batch_size: int = 8,
    bf16: bool = False,
) -> list[float]:
    """Sum of the log-probabilities of each example's answer tokens given its prompt."""
    import torch

    out: list[float] = []
    model.eval()
    autocast = torch.autocast(device.split(":")[0], torch.bfloat16, enabled=bf16)
    for start in range(0, len(examples), batch_size):
        part = list(examples[start : start + batch_size])
        batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in collator(part).items()}
        labels = batch.pop("labels")
        with torch.no_grad(), autocast:
            logits = model(**batch).logits.float()
        logps = torch.log_softmax(logits[:, :-1], dim=-1)
        target = labels[:, 1:]
        mask = target != IGNORE
        picked = logps.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        out += (picked * mask).sum(dim=1).tolist()
    return out


def pair_margins(
    model: Any, collator: Collator, pairs: Sequence[Example], device: str, bf16: bool = False
) -> list[float]:
    """log p(chosen) - log p(rejected) for each pair (positive: the chosen one is preferred)."""
    chosen = answer_logps(model, collator, pairs, device, bf16=bf16)
    flipped = [dataclasses.replace(p, answer=p.rejected) for p in pairs]
    rejected = answer_logps(model, collator, flipped, device, bf16=bf16)
    return [c - r for c, r in zip(chosen, rejected, strict=True)]


def preference_scores(base: list[float], tuned: list[float], beta: float) -> dict[str, float]:
    """From the base model's and the tuned model's margins on the same pairs: the share of
    pairs each prefers the chosen answer on, their mean margins (nats), and DPO's implicit
    reward margin, beta times the change of the margin (0 before training)."""
    n = len(base)
    if not n:
        return {}
    return {
        "preference_accuracy_base": round(sum(m > 0 for m in base) / n, 4),
        "preference_accuracy": round(sum(m > 0 for m in tuned) / n, 4),
        "logp_margin_base": round(sum(base) / n, 4),
        "logp_margin": round(sum(tuned) / n, 4),
        "reward_margin": round(beta * sum(t - b for t, b in zip(tuned, base, strict=True)) / n, 4),
    }
