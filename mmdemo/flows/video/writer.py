"""The text LLM with a token budget: every prompt is measured before it is sent, so none
overflows the context; long material is condensed map-reduce style to fit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mmdemo.errors import MMDemoError
from mmdemo.flows.generation import stopping_on
from mmdemo.flows.video.types import check

MARGIN = 16  # tokens kept free besides the template and the answer


@dataclass(frozen=True)
class LLMCall:
    prompt_tokens: int
    new_tokens: int
    seconds: float
    text: str = ""  # what the model wrote


class Writer:
    """Greedy generation with the manager's text LLM; ``calls`` records every prompt's size."""

    def __init__(self, bundle: Any, context: int, stop: threading.Event | None = None) -> None:
        self.bundle = bundle
        self.tokenizer = bundle.tokenizer
        own = getattr(bundle.model.config, "max_position_embeddings", None) or context
        self.limit = min(int(context), int(own))
        self.stop = stop or threading.Event()
        self.calls: list[LLMCall] = []
        self._overhead: dict[str, int] = {}

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prompt(self, system: str, user: str, prefix: str = "") -> str:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return text + prefix

    def budget(self, system: str, max_new: int, prefix: str = "") -> int:
        """Tokens left for the user's message under this system prompt and answer length."""
        if system not in self._overhead:
            self._overhead[system] = self.count(self._prompt(system, "", prefix))
        return self.limit - max_new - self._overhead[system] - MARGIN

    def write(
        self, system: str, user: str, max_new: int, prefix: str = "", one_line: bool = False
    ) -> str:
        """The model's answer (``prefix`` starts the answer, e.g. "Title:"); ``one_line``
        stops at the first line break after some text (small models ramble on)."""
        import torch
        from transformers import StoppingCriteria

        check(self.stop)
        prompt = self._prompt(system, user, prefix)
        inputs = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        n = int(inputs["input_ids"].shape[1])
        if n + max_new > self.limit:
            raise MMDemoError(
                f"internal: a {n}-token prompt does not fit the {self.limit}-token context"
            )
        start = time.perf_counter()
        tok = self.tokenizer
        criteria = stopping_on(self.stop)
        if one_line:

            class LineEnd(StoppingCriteria):
                def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                    text = tok.decode(input_ids[0, n:], skip_special_tokens=True)
                    done = "\n" in text.lstrip()
                    return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

            criteria.append(LineEnd())
        with torch.inference_mode():
            out = self.bundle.model.generate(
                **inputs.to(self.bundle.device),
                **self.bundle.generate_kwargs(inputs["input_ids"]),
                max_new_tokens=max_new,
                do_sample=False,
                repetition_penalty=1.15,
                stopping_criteria=criteria,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        new = out[0, n:]
        text = prefix + tok.decode(new, skip_special_tokens=True)
        self.calls.append(LLMCall(n, int(new.shape[0]), time.perf_counter() - start, text))
        check(self.stop)
        return text.strip().split("\n")[0] if one_line else text

    def fit(self, lines: Sequence[str], budget: int) -> list[list[str]]:
        """Lines packed into groups that each fit ``budget`` tokens (a line too long on its
        own is cut into word chunks first)."""
        groups: list[list[str]] = []
        group: list[str] = []
        size = 0
        for line in lines:
            for part in self._split(line, budget):
                n = self.count(part) + 1
                if group and size + n > budget:
                    groups.append(group)
                    group, size = [], 0
                group.append(part)
                size += n
        if group:
            groups.append(group)
        return groups

    def _split(self, line: str, budget: int) -> list[str]:
        """A line cut into word chunks of fewer than ``budget`` tokens each."""
        n = self.count(line)
        words = line.split()
        if n < budget or len(words) < 2:
            return [line] if n < budget else [line[: max(1, budget)]]
        per = max(1, int(len(words) * 0.8 * budget / n))
        parts = [" ".join(words[i : i + per]) for i in range(0, len(words), per)]
        return [piece for part in parts for piece in self._split(part, budget)]

    def condense(
        self,
        lines: Sequence[str],
        budget: int,
        summarise: Callable[[list[str]], list[str]],
        rounds: int = 4,
    ) -> tuple[list[str], int]:
        """Map-reduce: while ``lines`` exceed ``budget`` tokens, pack them into groups that
        fit, summarise each group into fewer lines, and repeat. Returns (lines that fit,
        groups summarised). A model that does not shrink its input is cut short instead."""
        lines = [line for line in lines if line.strip()]
        mapped = 0
        for _ in range(rounds):
            if sum(self.count(line) + 1 for line in lines) <= budget:
                return lines, mapped
            out: list[str] = []
            for group in self.fit(lines, budget):
                out += summarise(group)
                mapped += 1
            if sum(map(self.count, out)) >= sum(map(self.count, lines)):
                break
            lines = out
        return self.truncate(lines, budget), mapped

    def truncate(self, lines: Sequence[str], budget: int) -> list[str]:
        out, size = [], 0
        for line in lines:
            for part in self._split(line, budget):
                n = self.count(part) + 1
                if size + n > budget:
                    return out
                out.append(part)
                size += n
        return out
