"""Chat with "similar cases": indexed images like the user's join the VLM's context."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdemo.errors import BadInputError
from mmdemo.flows.chat import ChatService, ChatSession, build_messages
from mmdemo.flows.generation import GenerationSettings
from mmdemo.flows.similar import SimilarRequest
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.manager import ModelManager
from mmdemo.retrieval import IndexService
from tests.retrieval_helpers import write_photos

GEN = GenerationSettings(max_new_tokens=6)


@pytest.fixture
def chat(isolated_settings, tmp_path: Path) -> ChatService:
    manager = ModelManager(isolated_settings)
    retrieval = IndexService(isolated_settings, manager)
    photos = write_photos(tmp_path / "photos", ("astronaut", "cat", "coffee", "rocket", "horse"))
    retrieval.build("cases", [tmp_path / "photos"])
    service = ChatService(manager, AdapterStore(isolated_settings), retrieval=retrieval)
    service.photos = photos  # type: ignore[attr-defined]
    yield service
    manager.unload_all()


def test_similar_cases_join_the_context_without_the_query_itself(chat: ChatService) -> None:
    session = ChatSession()
    cat = chat.photos["cat"]  # type: ignore[attr-defined]
    final = list(
        chat.stream(
            session, "What is this?", [cat], "base", GEN, similar=SimilarRequest("cases", k=2)
        )
    )[-1]
    turn = session.turns[-1]
    assert final.metrics.tokens > 0
    assert len(turn.similar) == 2
    assert "cat.jpg" not in [c.name for c in turn.similar], "the query image itself is skipped"
    assert all(0 < c.score < 1 for c in turn.similar)
    assert "similar cases from the 'cases' collection" in turn.note
    messages, images = build_messages(session.turns)
    assert len(images) == 3 and messages[0]["content"][-1]["text"].startswith("The last 2 image(s)")


def test_similar_cases_need_an_image_and_a_valid_request(chat: ChatService) -> None:
    session = ChatSession()
    list(chat.stream(session, "Hello", [], "base", GEN, similar=SimilarRequest("cases", 2)))
    assert session.turns[-1].similar == []  # no image: nothing to compare
    with pytest.raises(BadInputError):
        SimilarRequest("cases", k=9)
    with pytest.raises(BadInputError):
        list(
            chat.stream(
                session,
                "Hi",
                [chat.photos["cat"]],
                "base",
                GEN,  # type: ignore[attr-defined]
                similar=SimilarRequest("no-such-index", 2),
            )
        )
    assert len(session.turns) == 1
