"""The Arena tab's handlers: run a comparison (streamed column by column), stop it, refresh
the list of what can be compared; run a blind comparison, vote on it, show the leaderboard."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr

from mmdemo.flows.arena import MAX_COLUMNS, ArenaResult, ArenaService
from mmdemo.flows.arena_blind import BlindArena
from mmdemo.flows.arena_remote import MAX_REMOTE
from mmdemo.flows.chat import BASE_NAME
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.votes import BAD, POSITIONS, TIE, VoteBook
from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.tabs.arena.api import export_json
from mmdemo.ui.tabs.arena.view import (
    base_column_md,
    base_summary_md,
    blind_column_md,
    blind_summary_md,
    column_md,
    export_md,
    leaderboard_md,
    leaderboard_rows,
    revealed_column_md,
    summary_md,
    vote_summary_md,
)
from mmdemo.zerogpu import gpu


def remote_updates(result: ArenaResult) -> list[Any]:
    """The remote columns: shown only when picked."""
    return [
        gr.update(value=column_md(result, i, remote=True), visible=bool(md))
        for i, md in enumerate(column_md(result, i, remote=True) for i in range(MAX_REMOTE))
    ]


class ArenaActions:
    """Handlers over the app's arena (per-session state: ``{"stop": Event, "blind": id}``)."""

    def __init__(self, arena: ArenaService) -> None:
        self.arena = arena

    @guarded_stream
    def run(
        self, path: str | None, text: str, names: list[str], max_new_tokens: float, st: dict
    ) -> Iterator[tuple[Any, ...]]:
        if path is None:
            raise gr.Error("Add an image first (or pick an example).")
        st.pop("blind", None)  # the columns now show open answers: no blind vote pending
        stop = st["stop"] = threading.Event()
        gen = GenerationSettings(max_new_tokens=int(max_new_tokens), greedy=True)
        for result in self.arena.stream(path, text, names or [BASE_NAME], gen, stop):
            yield (
                summary_md(result),
                *[column_md(result, i) for i in range(MAX_COLUMNS)],
                *remote_updates(result),
                *vote_buttons(0),
                st,
            )

    @guarded_stream
    def run_models(
        self, path: str | None, text: str, models: list[str], max_new_tokens: float, st: dict
    ) -> Iterator[tuple[Any, ...]]:
        """Compare base models: each picked model answers in its column with its numbers."""
        if path is None:
            raise gr.Error("Add an image first (or pick an example).")
        st.pop("blind", None)
        stop = st["stop"] = threading.Event()
        gen = GenerationSettings(max_new_tokens=int(max_new_tokens), greedy=True)
        picked = models or [self.arena.models.chat_model()]
        for result in self.arena.models.stream(path, text, picked, gen, stop):
            yield (
                base_summary_md(result),
                *[base_column_md(result, i) for i in range(MAX_COLUMNS)],
                *[
                    gr.update(value=md, visible=bool(md))
                    for md in (base_column_md(result, i, remote=True) for i in range(MAX_REMOTE))
                ],
                *vote_buttons(0),
                st,
            )

    def model_choices(self) -> Any:
        """The base models (and remote models) to compare."""
        return gr.update(choices=self.arena.models.choices())

    def stop(self, st: dict) -> None:
        if "stop" in st:
            st["stop"].set()

    def choices(self) -> Any:
        """The adapters and remote models to compare (new ones appear when opened)."""
        return gr.update(choices=self.arena.choices())


VOTES = (*POSITIONS[:MAX_COLUMNS], TIE, BAD)  # the vote buttons: a position each, tie, all bad


def vote_buttons(positions: int) -> list[Any]:
    """The vote buttons: one per shown position, tie and all bad; none while not voting."""
    return [
        gr.update(visible=positions > 0 and (v in (TIE, BAD) or POSITIONS.index(v) < positions))
        for v in VOTES
    ]


class BlindActions:
    """Blind comparisons and votes (per-session state: ``{"stop": Event, "blind": id}``)."""

    def __init__(self, blind: BlindArena, votes: VoteBook) -> None:
        self.blind = blind
        self.votes = votes
        self._answers = gpu("arena")(self._stream)  # the model work (a ZeroGPU worker there)

    def _stream(self, path: str, text: str, names: list[str], gen: Any, stop: Any) -> Any:
        yield from self.blind.stream(path, text, names, gen, stop)

    @guarded_stream
    def run_blind(
        self,
        path: str | None,
        text: str,
        names: list[str],
        max_new_tokens: float,
        st: dict,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Answer with the names hidden; then open the comparison for this session's vote."""
        if path is None:
            raise gr.Error("Add an image first (or pick an example).")
        st.pop("blind", None)
        stop = st["stop"] = threading.Event()
        gen = GenerationSettings(max_new_tokens=int(max_new_tokens), greedy=True)
        hidden_remote = [gr.update(value="", visible=False)] * MAX_REMOTE
        update = None
        for update in self._answers(path, text, names or [], gen, stop):
            yield (
                blind_summary_md(update, voting=False),
                *[blind_column_md(update, i) for i in range(MAX_COLUMNS)],
                *hidden_remote,
                *vote_buttons(0),
                st,
            )
        if update is None or update.draft is None:
            return
        st["blind"] = self.blind.open(update.draft, request.session_hash).id
        yield (
            blind_summary_md(update, voting=True),
            *[blind_column_md(update, i) for i in range(MAX_COLUMNS)],
            *hidden_remote,
            *vote_buttons(len(update.answers)),
            st,
        )

    def voter(self, winner: str) -> Any:
        """The handler of the vote button for ``winner`` (a position, tie or bad)."""

        @guarded
        def vote(st: dict, request: gr.Request) -> tuple[Any, ...]:
            if "blind" not in st:
                raise gr.Error("Run a blind comparison first (Compare blind), then vote.")
            record = self.votes.vote(st["blind"], winner, request.session_hash)
            st.pop("blind")
            return (
                vote_summary_md(record),
                *[revealed_column_md(record, i) for i in range(MAX_COLUMNS)],
                *vote_buttons(0),
                *self.leaderboard(),
                st,
            )

        vote.__name__ = f"vote_{winner.lower()}"
        return vote

    @staticmethod
    def exporter(ctx: Any) -> Any:
        """The handler of the Export votes button: counts and where to find them, the zip."""

        @guarded
        def export_votes(request: gr.Request) -> tuple[str, str]:
            result = export_json(ctx, "", request.session_hash if request else None)
            return export_md(result), result["download"]["path"]

        return export_votes

    def on_load(self) -> tuple[Any, ...]:
        """A page opens: what can be compared (new adapters appear) and the leaderboard."""
        return gr.update(choices=self.blind.arena.choices()), *self.leaderboard()

    def leaderboard(self) -> tuple[Any, Any]:
        """The served base model's leaderboard: its rows and the line above them."""
        result = self.votes.leaderboard()
        board = self.blind.board()
        return leaderboard_rows(result, board), leaderboard_md(result, board)
