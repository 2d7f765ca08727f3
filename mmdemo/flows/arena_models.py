"""The arena's "Compare base models": one image and prompt answered by different base VLMs
side by side (the chat's own model, a SmolVLM, a Qwen2.5-VL, a LLaVA, ...), each column with
its numbers (load time, time to first token, tokens/s, the model's memory), and remote
columns (any OpenAI-compatible server) beside them as in the adapter arena.

The local columns answer one after another: the other models load through the manager's
memory-budgeted ``extras`` (least recently used extra models are unloaded to make room, and
the column says which and why; a model that cannot fit is refused in its column, naming cause
and fix, while the other columns go on). The chat's own VLM answers through its adapter
runtime's pin, so a chat answer in progress is never disturbed.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mmdemo.errors import BadInputError, MMDemoError, is_out_of_memory, require_local
from mmdemo.flows.arena_remote import MAX_REMOTE, RemoteRun
from mmdemo.flows.chat import BASE_NAME, ChatService
from mmdemo.flows.chat_local import model_inputs
from mmdemo.flows.conversation import MAX_PROMPT_CHARS
from mmdemo.flows.generation import (
    GenerationSettings,
    TokenStreamer,
    eos_token_ids,
    peak_memory_bytes,
    run_generation,
)
from mmdemo.flows.remote import RemoteClient, RemoteEndpoint
from mmdemo.flows.sizes import check_message
from mmdemo.models.extras import Eviction
from mmdemo.models.families import FAMILIES, by_model_id
from mmdemo.redact import redact_text

MAX_BASES = 3  # local base models at once


@dataclass(frozen=True)
class BaseColumn:
    """One base model's answer and numbers."""

    model: str  # the model id (or the remote column's label)
    family: str  # its family's title ("" when unknown, or the remote column's model)
    text: str = ""
    status: str = "waiting"  # waiting | loading | answering | done | stopped | failed
    tokens: int = 0
    ttft_s: float = 0.0  # from the start of its generation to its first token
    tokens_per_s: float = 0.0
    load_s: float = 0.0  # 0.0 when it was already loaded
    memory_bytes: int = 0  # the loaded model's weights and buffers
    peak_memory_bytes: int = 0  # peak RSS (CUDA: peak allocated) while it answered
    chat_model: bool = False  # the chat's own VLM
    remote: bool = False
    error: str = ""  # why it has no answer
    evicted: tuple[Eviction, ...] = ()  # models unloaded to make room for this one


@dataclass(frozen=True)
class BaseArenaResult:
    columns: tuple[BaseColumn, ...]
    total_s: float
    done: bool

    @property
    def evicted(self) -> tuple[Eviction, ...]:
        return tuple(e for c in self.columns for e in c.evicted)


class BaseModelArena:
    """Different base models side by side (over the chat's manager and the arena's remotes)."""

    def __init__(
        self,
        chat: ChatService,
        remotes: dict[str, RemoteEndpoint],
        clients: dict[str, RemoteClient],
    ) -> None:
        self.chat = chat
        self.remotes = remotes
        self._clients = clients

    @property
    def manager(self) -> Any:
        return self.chat.manager

    def chat_model(self) -> str:
        return self.manager.model_id("vlm")

    def local_choices(self) -> list[str]:
        """The chat's model, then each family's model for this profile that may load here."""
        settings = self.manager.settings
        profile = settings.resolved_profile
        ids = [self.chat_model()]
        for family in FAMILIES.values():
            model_id = family.model_ids().get(profile, "")
            if not model_id or (family.gpu_only and profile != "gpu"):
                continue
            if family.remote_code and not settings.trust_remote_code:
                continue
            ids.append(model_id)
        return list(dict.fromkeys(ids))

    def choices(self) -> list[str]:
        return [*self.local_choices(), *self.remotes]

    def default_picks(self) -> list[str]:
        """The chat's model and, of the offered ones, a Qwen2.5-VL and a LLaVA (else the
        next offered models): three families with different image handling."""
        offered = self.local_choices()
        profile = self.manager.settings.resolved_profile
        liked = [FAMILIES[k].model_ids().get(profile, "") for k in ("qwen2.5-vl", "llava-1.5")]
        picks = [offered[0], *(m for m in liked if m in offered[1:])]
        picks += [m for m in offered if m not in picks]
        return picks[:MAX_BASES]

    def resolve(self, name: str) -> str:
        """A picked name as a model id: a family key ("qwen2.5-vl") becomes its model for this
        profile; another model id is allowed in local mode only."""
        name = (name or "").strip()
        if not name or name == BASE_NAME:
            return self.chat_model()
        if name in FAMILIES:
            model_id = FAMILIES[name].model_ids().get(self.manager.settings.resolved_profile)
            if not model_id:
                raise BadInputError(
                    f"the {FAMILIES[name].title} family has no model for the "
                    f"'{self.manager.settings.resolved_profile}' profile",
                    fix=f"pick one of: {', '.join(self.local_choices())}",
                )
            return model_id
        if name not in self.local_choices():
            require_local(self.manager.settings, f"loading the model '{name}'")
        return name

    def stream(
        self,
        image: Any,
        prompt: str,
        models: Sequence[str],
        gen: GenerationSettings | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[BaseArenaResult]:
        """Answer ``prompt`` about ``image`` with each of ``models`` (model ids, family keys,
        remote labels); local columns one after another, remote ones at once beside them."""
        prompt = (prompt or "").strip()
        if not prompt:
            raise BadInputError("the prompt is empty", fix="type the question every model answers")
        check_message(len(prompt), MAX_PROMPT_CHARS)
        picked = list(dict.fromkeys(m.strip() for m in models if m and m.strip()))
        if not picked:
            raise BadInputError(
                "pick at least one base model", fix=f"e.g. {', '.join(self.local_choices())}"
            )
        remote = [self.remotes[n] for n in picked if n in self.remotes]
        local = list(dict.fromkeys(self.resolve(n) for n in picked if n not in self.remotes))
        if len(local) > MAX_BASES or len(remote) > MAX_REMOTE:
            raise BadInputError(
                f"the arena compares at most {MAX_BASES} base models and {MAX_REMOTE} remote "
                f"models at once; {len(local)} and {len(remote)} were picked",
                fix="pick fewer models",
            )
        gen, stop = gen or GenerationSettings(), stop or threading.Event()
        images = self.chat.prepare_images([image]) if image is not None else []
        # a remote chat VLM answers its own column: one more remote request
        served = self.chat.engine.endpoint(BASE_NAME) if self.chat_model() in local else None
        if served is not None:
            local.remove(self.chat_model())
        started = time.perf_counter()
        run = RemoteRun(
            [*([served] if served else []), *remote], prompt, images, gen, stop, self._clients
        ).start()
        board = [self._column(m) for m in local]
        try:
            for i, model_id in enumerate(local):
                for column in self._answer(board[i], model_id, prompt, images, gen, stop):
                    board[i] = column
                    yield _result(board, run, served is not None, started, done=False)
            while not run.done:
                run.wait(0.1)
                if not run.done:
                    yield _result(board, run, served is not None, started, done=False)
            yield _result(board, run, served is not None, started, done=True)
        finally:
            if not run.done:  # the consumer left early: the remote requests end too
                stop.set()

    def _column(self, model_id: str) -> BaseColumn:
        family = by_model_id(model_id)
        return BaseColumn(
            model_id, family.title if family else "", chat_model=model_id == self.chat_model()
        )

    def _answer(
        self,
        column: BaseColumn,
        model_id: str,
        prompt: str,
        images: list[Any],
        gen: GenerationSettings,
        stop: threading.Event,
    ) -> Iterator[BaseColumn]:
        """One column's answer as it grows; a failure ends in the column, not the arena."""
        if stop.is_set():
            yield dataclasses.replace(column, status="stopped")
            return
        yield (column := dataclasses.replace(column, status="loading"))
        try:
            if column.chat_model:
                start = time.perf_counter()
                fresh = not self.manager.is_loaded("vlm")
                loaded = self.manager.get_loaded("vlm")
                column = dataclasses.replace(
                    column,
                    load_s=time.perf_counter() - start if fresh else 0.0,
                    memory_bytes=loaded.nbytes,
                )
                bundle = loaded.handle
                with bundle.adapters.pin((None,)) as pinned:
                    yield from _generate(column, bundle, pinned.model, prompt, images, gen, stop)
                return
            with self.manager.extras.lease(model_id) as extra:
                column = dataclasses.replace(
                    column,
                    load_s=extra.load_seconds,
                    memory_bytes=extra.loaded.nbytes,
                    evicted=extra.evicted,
                )
                bundle = extra.handle
                yield from _generate(column, bundle, bundle.model, prompt, images, gen, stop)
        except MMDemoError as exc:
            yield dataclasses.replace(column, status="failed", error=str(exc))
        except Exception as exc:  # one model's failure is its column's, the others go on
            cause = "out of memory" if is_out_of_memory(exc) else type(exc).__name__
            yield dataclasses.replace(column, status="failed", error=redact_text(f"{cause}: {exc}"))


def _generate(
    column: BaseColumn,
    bundle: Any,
    model: Any,
    prompt: str,
    images: list[Any],
    gen: GenerationSettings,
    stop: threading.Event,
) -> Iterator[BaseColumn]:
    content = [{"type": "image"}] * len(images) + [{"type": "text", "text": prompt}]
    inputs = model_inputs(bundle, [{"role": "user", "content": content}], images)
    streamer = TokenStreamer.of(1, eos_token_ids(model, bundle.tokenizer), stop)
    row = streamer.rows[0]

    def now(status: str) -> BaseColumn:
        return dataclasses.replace(
            column,
            status=status,
            text=bundle.tokenizer.decode(row.tokens, skip_special_tokens=True).strip(),
            tokens=row.clock.tokens,
            ttft_s=row.clock.ttft if row.clock.first_token is not None else 0.0,
            tokens_per_s=row.clock.tokens_per_s(),
        )

    for _ in run_generation(model, inputs, streamer, gen.generate_kwargs()):
        yield now("answering")
    final = now("stopped" if row.stopped else "done")
    yield dataclasses.replace(final, peak_memory_bytes=peak_memory_bytes(row.clock, bundle.device))


def _result(
    board: list[BaseColumn], run: RemoteRun, served: bool, started: float, done: bool
) -> BaseArenaResult:
    remote = tuple(
        BaseColumn(
            s.endpoint.label,
            s.label,
            s.text.strip(),
            status="failed" if s.error else "done" if s.done else "answering",
            tokens=s.tokens,
            ttft_s=s.ttft_s or 0.0,
            tokens_per_s=s.tokens_per_s,
            chat_model=served and i == 0,
            remote=True,
            error=s.error,
        )
        for i, s in enumerate(run.slots)
    )
    return BaseArenaResult((*board, *remote), time.perf_counter() - started, done)
