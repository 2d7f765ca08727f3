"""From examples to model batches: the model family's own chat template, and labels that mask
everything but the answer (prompt, image tokens and padding are not learned)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.finetune.data import Example

IGNORE = -100


def user_message(prompt: str, with_image: bool) -> dict[str, Any]:
    if not with_image:
        return {"role": "user", "content": prompt}
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}


def assistant_message(answer: str, with_image: bool) -> dict[str, Any]:
    if not with_image:
        return {"role": "assistant", "content": answer}
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}


class Collator:
    """Callable the Trainer uses as ``data_collator``; also tokenizes prompts for evaluation.

    ``processor`` is a VLM processor (images) or a plain tokenizer (text-only base).
    """

    def __init__(self, processor: Any, with_images: bool, max_side: int = 1024):
        self.processor = processor
        self.with_images = with_images
        self.max_side = max_side
        self.tokenizer = getattr(processor, "tokenizer", processor)

    # texts --------------------------------------------------------------------------------
    def prompt_text(self, example: Example) -> str:
        return self.processor.apply_chat_template(
            [user_message(example.prompt, self.with_images)],
            add_generation_prompt=True,
            tokenize=False,
        )

    def answer_text(self, example: Example) -> tuple[str, str]:
        """(prompt, answer part): the answer part is what follows the prompt in the template's
        rendering of the whole exchange (the answer and the end-of-turn marker)."""
        prompt = self.prompt_text(example)
        full = self.processor.apply_chat_template(
            [
                user_message(example.prompt, self.with_images),
                assistant_message(example.answer, self.with_images),
            ],
            tokenize=False,
        )
        if not full.startswith(prompt):  # templates that rewrite earlier turns
            eos = self.tokenizer.eos_token or ""
            return prompt, " " + example.answer + eos
        return prompt, full[len(prompt) :].rstrip()

    def image_of(self, example: Example) -> Any:
        from mmdemo.images import load_image

        return load_image(example.image, self.max_side)

    # batches ------------------------------------------------------------------------------
    def encode(self, texts: list[str], images: list[Any] | None, padding_side: str) -> Any:
        self.tokenizer.padding_side = padding_side
        if self.with_images:
            return self.processor(
                text=texts, images=[[im] for im in images or []], return_tensors="pt", padding=True
            )
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def __call__(self, examples: Sequence[Example]) -> dict[str, Any]:
        if not examples:
            raise BadInputError("an empty batch")
        pairs = [self.answer_text(ex) for ex in examples]
        texts = [p + a for p, a in pairs]
        images = [self.image_of(ex) for ex in examples] if self.with_images else None
        batch = self.encode(texts, images, "right")
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = IGNORE
        for row, (_, answer) in enumerate(pairs):
            n = self.answer_tokens(answer)
            length = int(batch["attention_mask"][row].sum())
            ids = batch["input_ids"][row, length - n : length].tolist()
            if ids != self.tokenizer(answer, add_special_tokens=False)["input_ids"]:
                n = length - self._prompt_length(pairs[row][0], images[row] if images else None)
            labels[row, : length - n] = IGNORE
        batch["labels"] = labels
        return dict(batch)

    def answer_tokens(self, answer: str) -> int:
        return len(self.tokenizer(answer, add_special_tokens=False)["input_ids"])

    def _prompt_length(self, prompt: str, image: Any) -> int:
        """Slow path: the prompt's length with its image tokens expanded."""
        return int(
            self.encode([prompt], [image] if image is not None else None, "right")[
                "attention_mask"
            ].sum()
        )

    def lengths(self, example: Example) -> tuple[int, int]:
        """(whole example, answer) in tokens, image tokens included."""
        prompt, answer = self.answer_text(example)
        image = [self.image_of(example)] if self.with_images else None
        total = int(self.encode([prompt + answer], image, "right")["attention_mask"].sum())
        return total, self.answer_tokens(answer)

    def prompts(self, examples: Sequence[Example]) -> dict[str, Any]:
        """Left-padded prompts for batched greedy generation (evaluation)."""
        texts = [self.prompt_text(ex) for ex in examples]
        images = [self.image_of(ex) for ex in examples] if self.with_images else None
        return dict(self.encode(texts, images, "left"))


def drop_too_long(
    collator: Collator, examples: list[Example], max_length: int
) -> tuple[list[Example], list[str]]:
    """Examples that fit ``max_length`` tokens, and a line per dropped one.

    Examples with the same texts and image size are measured once.
    """
    kept, dropped = [], []
    seen: dict[tuple[str, str, Any], int] = {}
    for ex in examples:
        key = (ex.prompt, ex.answer, image_size(ex.image) if collator.with_images else None)
        if key not in seen:
            seen[key] = collator.lengths(ex)[0]
        if seen[key] > max_length:
            dropped.append(
                f"{ex.qid or ex.prompt[:40]}: {seen[key]} tokens > max_length {max_length}"
            )
        else:
            kept.append(ex)
    return kept, dropped


def image_size(image: Any) -> tuple[int, int] | None:
    """An image's size without decoding it (PIL reads only the header of a file)."""
    if hasattr(image, "size"):
        return tuple(image.size)
    from PIL import Image

    try:
        with Image.open(image) as im:
            return im.size
    except Exception:  # unreadable files were reported when the data was read
        return None
