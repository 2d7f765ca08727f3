"""Evaluation as medical VQA papers report it: closed-question accuracy, open-question token
recall (share of the reference answer's words found in the prediction), and overall (the
mean of the per-question scores); captions are scored by token recall too, and grounding
answers by the overlap of their box with the true one (IoU@0.5 accuracy and mean IoU,
``finetune/grounding.py``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mmdemo.finetune.collate import Collator
from mmdemo.finetune.data import Example
from mmdemo.finetune.grounding import IOU_HIT, box_iou, mean_boxes, prior_answer

WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def closed_correct(prediction: str, answer: str) -> bool:
    """Exact match after lower-casing and dropping punctuation; a one-word answer also counts
    when it is the prediction's first word ("yes, there is" for "yes")."""
    pred, ref = words(prediction), words(answer)
    if not ref:
        return False
    return pred == ref or (len(ref) == 1 and pred[:1] == ref)


def token_recall(prediction: str, answer: str) -> float:
    ref = set(words(answer))
    return len(ref & set(words(prediction))) / len(ref) if ref else 0.0


@dataclass(frozen=True)
class Scored:
    qid: str
    kind: str
    question: str
    answer: str
    prediction: str
    score: float  # 1/0 for closed questions and grounding (IoU >= 0.5), token recall otherwise
    iou: float | None = None  # grounding: the predicted box's IoU with the true one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score(example: Example, prediction: str) -> Scored:
    if example.kind == "grounding":
        overlap = box_iou(prediction, example.answer)
        hit = float(overlap >= IOU_HIT)
        return Scored(
            example.qid, example.kind, example.prompt, example.answer, prediction, hit, overlap
        )
    value = (
        float(closed_correct(prediction, example.answer))
        if example.kind == "closed"
        else token_recall(prediction, example.answer)
    )
    return Scored(example.qid, example.kind, example.prompt, example.answer, prediction, value)


def summarize(rows: Sequence[Scored]) -> dict[str, float]:
    """closed_accuracy, open_recall, caption_recall, iou50_accuracy and mean_iou (grounding)
    where present; overall, count."""
    out: dict[str, float] = {}
    for kind, key in (
        ("closed", "closed_accuracy"),
        ("open", "open_recall"),
        ("caption", "caption_recall"),
        ("grounding", "iou50_accuracy"),
    ):
        part = [r.score for r in rows if r.kind == kind]
        if part:
            out[key] = round(sum(part) / len(part), 4)
    overlaps = [r.iou or 0.0 for r in rows if r.kind == "grounding"]
    if overlaps:
        out["mean_iou"] = round(sum(overlaps) / len(overlaps), 4)
    if rows:
        out["overall"] = round(sum(r.score for r in rows) / len(rows), 4)
    out["count"] = len(rows)
    return out


def generate_answers(
    model: Any,
    collator: Collator,
    examples: Sequence[Example],
    device: str,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    bf16: bool = False,
) -> list[str]:
    """Greedy answers, batched with left padding (``bf16``: under bf16 autocast)."""
    import torch

    if max_new_tokens is None:
        longest = max((collator.answer_tokens(ex.answer) for ex in examples), default=8)
        max_new_tokens = min(96, longest + 4)
    tokenizer = collator.tokenizer
    model.eval()
    answers: list[str] = []
    for start in range(0, len(examples), batch_size):
        part = examples[start : start + batch_size]
        inputs = {
            k: v.to(device) if hasattr(v, "to") else v for k, v in collator.prompts(part).items()
        }
        autocast = torch.autocast(device.split(":")[0], torch.bfloat16, enabled=bf16)
        with torch.inference_mode(), autocast:
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[:, inputs["input_ids"].shape[1] :]
        answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
        if progress is not None:
            progress(len(answers), len(examples))
    return answers


def evaluate(
    model: Any,
    collator: Collator,
    examples: Sequence[Example],
    device: str,
    progress: Callable[[int, int], None] | None = None,
    bf16: bool = False,
) -> tuple[dict[str, float], list[Scored]]:
    """Metrics and per-question results of ``model`` on ``examples`` (``bf16``: the answers
    are generated under bf16 autocast, as the run trained)."""
    predictions = generate_answers(model, collator, examples, device, progress=progress, bf16=bf16)
    rows = [score(ex, p) for ex, p in zip(examples, predictions, strict=True)]
    return summarize(rows), rows


def blind_baseline(train: Sequence[Example], test: Sequence[Example]) -> dict[str, float]:
    """Scores of an image-blind answerer: for each test question, the most common training
    answer to the same question text (the overall most common answer for unseen questions).
    What a model that ignores the image reaches; a fine-tuned VLM must beat it."""
    from collections import Counter

    by_question: dict[str, Counter] = {}
    for ex in train:
        by_question.setdefault(ex.prompt, Counter())[ex.answer] += 1
    overall = Counter(ex.answer for ex in train).most_common(1)
    fallback = overall[0][0] if overall else ""
    rows = []
    for ex in test:
        seen = by_question.get(ex.prompt)
        rows.append(score(ex, seen.most_common(1)[0][0] if seen else fallback))
    return summarize(rows)


def position_prior_baseline(train: Sequence[Example], test: Sequence[Example]) -> dict[str, float]:
    """Scores of an image-blind grounder: for each test question, the mean training box for
    the same question (the mean of all training boxes for unseen questions). Where objects
    tend to be, not where this one is; a fine-tuned VLM must beat it."""
    means = mean_boxes([ex for ex in train if ex.kind == "grounding"])
    return summarize([score(ex, prior_answer(means, ex.prompt)) for ex in test])
