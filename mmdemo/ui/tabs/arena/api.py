"""The Arena tab's named endpoints: ``/arena(image, prompt, adapters)`` returns every
column's answer and speed; ``/arena_models(image, prompt, models)`` the same with different
base models (their load time, first-token time, speed and memory, and which extra models were
unloaded to make room). The image arrives as an upload (``handle_file``) and is decoded by
the house decoder, so a wrong file is refused with its cause and a fix.

Blind votes: ``/arena_blind(image, prompt, adapters)`` answers with the names hidden and
returns a ``comparison_id``; ``/arena_vote(comparison_id, winner)`` records the vote (winner:
a position, "tie" or "bad") and reveals who was who; ``/leaderboard(base_model)`` returns the
Bradley–Terry ratings with their intervals per base model; ``/votes_export(base_model)``
writes the votes as training data (a preference set for DPO, the chosen answers as
question/answer rows) and returns the files, a zip to download and the counts."""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.flows.arena import MAX_COLUMNS
from mmdemo.flows.chat import BASE_NAME
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.limits import require_local
from mmdemo.flows.votes_export import archive, export_votes
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path
from mmdemo.zerogpu import gpu


def arena_json(result: Any) -> dict[str, Any]:
    return {
        "mode": result.mode,
        "total_s": round(result.total_s, 3),
        "ttft_s": round(result.ttft_s, 3),
        "columns": [
            {
                "adapter": c.adapter,
                "label": c.label,
                "text": c.text,
                "tokens": c.tokens,
                "tokens_per_s": round(c.tokens_per_s, 2),
                "remote": c.remote,
                "error": c.error,
            }
            for c in result.columns
        ],
    }


def base_models_json(result: Any) -> dict[str, Any]:
    """A base-model comparison: every column's answer and numbers, and what was unloaded."""
    return {
        "total_s": round(result.total_s, 3),
        "columns": [
            {
                "model": c.model,
                "family": c.family,
                "text": c.text,
                "status": c.status,
                "tokens": c.tokens,
                "ttft_s": round(c.ttft_s, 3),
                "tokens_per_s": round(c.tokens_per_s, 2),
                "load_s": round(c.load_s, 3),
                "memory_bytes": c.memory_bytes,
                "peak_memory_bytes": c.peak_memory_bytes,
                "chat_model": c.chat_model,
                "remote": c.remote,
                "error": c.error,
                "unloaded": [
                    {"model": e.model_id, "bytes": e.nbytes, "reason": e.reason} for e in c.evicted
                ],
            }
            for c in result.columns
        ],
        "unloaded": [
            {"model": e.model_id, "bytes": e.nbytes, "reason": e.reason} for e in result.evicted
        ],
    }


def blind_json(comparison: Any, update: Any) -> dict[str, Any]:
    """A blind comparison as its client sees it: the id to vote with and the answers."""
    return {
        "comparison_id": comparison.id,
        "base_model": comparison.draft.board,
        "positions": list(comparison.draft.positions),
        "answers": [
            {"position": p, "text": t}
            for p, t in zip(comparison.draft.positions, update.answers, strict=True)
        ],
        "mode": update.mode,
        "total_s": round(update.total_s, 3),
        "vote_with": "/arena_vote(comparison_id, winner): a position, 'tie' or 'bad'",
    }


def vote_json(record: dict[str, Any]) -> dict[str, Any]:
    """A recorded vote: who was behind each position, now that it is cast."""
    return {
        "vote": record["vote"],
        "comparison_id": record["comparison"],
        "time": record["time"],
        "base_model": record["board"],
        "winner": record["winner"],
        "winner_adapter": record["winner_adapter"],
        "columns": record["columns"],
    }


def session_of(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) or None


def register(ctx: AppContext) -> None:
    """Publish ``/arena``, ``/arena_models`` and ``/arena_blind`` (model work: heavy),
    ``/arena_vote`` (heavy: each vote spends from the client's request budget) and
    ``/leaderboard`` (light)."""
    arena, blind, votes = ctx.services.arena, ctx.services.blind, ctx.services.votes

    @gpu("arena")
    def arena_endpoint(
        image: FileData | None, prompt: str, adapters: list[str] | None = None
    ) -> dict:
        """The same image and prompt answered by base and up to 3 adapters side by side."""
        path = upload_path(image, "image")
        for res in arena.stream(
            path, prompt, adapters or [BASE_NAME], GenerationSettings(), threading.Event()
        ):
            if res.done:
                return arena_json(res)
        raise RuntimeError("the arena ended without a result")

    gr.api(ctx.heavy(guarded(arena_endpoint)), api_name="arena", concurrency_id="vlm")

    @gpu("arena")
    def arena_models(image: FileData | None, prompt: str, models: list[str] | None = None) -> dict:
        """The same image and prompt answered by up to 3 different base models (model ids or
        family keys such as "qwen2.5-vl"; default: the chat's model) and remote models, each
        with its numbers; "unloaded" names the extra models unloaded to make room, and why."""
        path = upload_path(image, "image")
        picked = models or [arena.models.chat_model()]
        for res in arena.models.stream(path, prompt, picked, GenerationSettings()):
            if res.done:
                return base_models_json(res)
        raise RuntimeError("the arena ended without a result")

    gr.api(ctx.heavy(guarded(arena_models)), api_name="arena_models", concurrency_id="vlm")

    @gpu("arena")
    def blind_answers(path: str | None, prompt: str, adapters: list[str]) -> Any:
        for update in blind.stream(path, prompt, adapters, GenerationSettings()):
            if update.done:
                return update
        raise RuntimeError("the arena ended without a result")

    def arena_blind(
        image: FileData | None,
        prompt: str,
        adapters: list[str] | None = None,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Base and 1-3 adapters answer with their names hidden, in a random order (default:
        base and the first adapters); vote on the returned comparison_id with /arena_vote."""
        path = upload_path(image, "image")
        update = blind_answers(path, prompt, adapters or blind.choices()[:MAX_COLUMNS])
        return blind_json(blind.open(update.draft, session_of(request)), update)

    def arena_vote(
        comparison_id: str,
        winner: str,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """Vote on a blind comparison: winner is the better answer's position ("A", "B",
        ...), "tie", or "bad" when all are bad; returns who answered at each position."""
        return vote_json(votes.vote(comparison_id, winner, session_of(request)))

    def leaderboard(base_model: str = "", by_version: bool = False) -> dict:
        """Bradley–Terry ratings from the blind votes with 95% bootstrap intervals, one board
        per base model (base_model: only that one's); by_version: each adapter version apart."""
        return votes.leaderboard(base_model.strip(), by_version=bool(by_version))

    def votes_export(
        base_model: str = "",
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> dict:
        """The blind votes as training data (local mode): "preferences" (prompt, image, chosen,
        rejected per line; ties and all-bad votes skipped) for the dpo method, "sft" (the
        chosen answers as image/question/answer lines) for the others, in a new "folder" on
        this server (pass it, or a file, as /train's dataset) and zipped as "download" (the
        Fine-tune tab's upload takes it); "counts" says what was kept and skipped."""
        return export_json(ctx, base_model, session_of(request))

    gr.api(ctx.heavy(guarded(arena_blind)), api_name="arena_blind", concurrency_id="vlm")
    gr.api(ctx.heavy(guarded(arena_vote)), api_name="arena_vote")
    gr.api(
        ctx.light(guarded(leaderboard), "reads the vote file; the fit is cached until a vote"),
        api_name="leaderboard",
        queue=False,
    )
    gr.api(
        ctx.light(guarded(votes_export), "reads the vote file and copies the voted images"),
        api_name="votes_export",
    )


def export_json(ctx: AppContext, base_model: str, session: str | None) -> dict[str, Any]:
    """Export the votes (refused on a hosted server: they hold every visitor's prompts) into
    a new folder beside them, and its zip into the session's folder (Gradio serves it)."""
    settings = ctx.settings
    require_local(settings, "exporting the arena votes")
    export = export_votes(
        settings.votes_dir, settings.votes_dir / "exports", (base_model or "").strip()
    )
    zipped = archive(export, ctx.sessions.folder(session))
    return {**export.as_dict(), "download": FileData(path=str(zipped)).model_dump()}
