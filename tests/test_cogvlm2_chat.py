"""CogVLM2 answers in the chat through the same path as the other families.

This is a contract test of CogVLM2's documented interface, since its real remote code (and its
19B weights) cannot be downloaded here: a small fake model has exactly what the model card's
demo uses, ``build_conversation_input_ids(tokenizer, *, query, history, images,
template_version)`` returning 1-D ``input_ids`` / ``token_type_ids`` / ``attention_mask`` and
``images``, and ``generate(input_ids=[1, n], token_type_ids=[1, n], attention_mask=[1, n],
images=[[image tensor in the model's dtype]] or None, ...)``. Its answer says what reached it,
so the assertions are about what a user would read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from mmdemo.errors import BadInputError
from mmdemo.flows.chat import ChatService
from mmdemo.flows.conversation import ChatSession
from mmdemo.flows.generation import GenerationSettings
from mmdemo.models.adapters import AdapterStore
from mmdemo.models.backends.vlm import VLMBundle
from mmdemo.models.manager import LoadContext, LoadedModel, ModelManager

RED = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"
GEN = GenerationSettings(max_new_tokens=32, greedy=True)
MODEL_ID = "THUDM/cogvlm2-llama3-chat-19B"
LANGUAGE, VISION = 0, 1  # the remote code's token types
IMAGE_SIZE, IMAGE_TOKENS = 16, 4


class FakeCogVLM2(torch.nn.Module):
    """The interface CogVLM2's remote code documents, and nothing else."""

    dtype = torch.bfloat16

    def __init__(self, tokenizer: Any) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.config = type("Config", (), {"model_type": "cogvlm2"})()
        eos = tokenizer.eos_token_id
        self.generation_config = type("GenerationConfig", (), {"eos_token_id": eos})()
        self.built: list[dict[str, Any]] = []

    def build_conversation_input_ids(
        self,
        tokenizer: Any,
        *,
        query: str,
        history: list[tuple[str, str]] | None = None,
        images: list[Any] | None = None,
        template_version: str | None = None,
    ) -> dict[str, Any]:
        assert images is None or len(images) <= 1, "not support multi images by now."
        self.built.append(
            {"query": query, "history": history, "images": images, "template": template_version}
        )
        prompt = "".join(f"USER: {q} ASSISTANT: {a}\n" for q, a in history or [])
        prompt += f"USER: {query} ASSISTANT:"
        ids = [tokenizer.bos_token_id]
        types = [LANGUAGE]
        out: dict[str, Any] = {}
        if images:
            ids += [tokenizer.pad_token_id] * IMAGE_TOKENS
            types += [VISION] * IMAGE_TOKENS
            out["images"] = [torch.rand(3, IMAGE_SIZE, IMAGE_SIZE)]  # float32, as transformed
        ids += tokenizer.encode(prompt, add_special_tokens=False)
        types += [LANGUAGE] * (len(ids) - len(types))
        out["input_ids"] = torch.tensor(ids, dtype=torch.long)
        out["token_type_ids"] = torch.tensor(types, dtype=torch.long)
        out["attention_mask"] = torch.ones(len(ids), dtype=torch.long)
        return out

    def generate(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        images: list[list[torch.Tensor]] | None = None,
        streamer: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        assert input_ids.shape == token_type_ids.shape == attention_mask.shape
        assert input_ids.shape[0] == 1
        seen = "no image"
        if images is not None:
            (row,) = images
            (image,) = row
            assert image.dtype == self.dtype and image.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
            assert int((token_type_ids == VISION).sum()) == IMAGE_TOKENS
            seen = "an image"
        pairs = len(self.built[-1]["history"] or [])
        answer = f"I saw {seen} after {pairs} earlier questions."
        tokens = [*self.tokenizer.encode(answer, add_special_tokens=False)]
        tokens.append(self.tokenizer.eos_token_id)
        if streamer is not None:
            streamer.put(input_ids)
            for token in tokens:
                streamer.put(torch.tensor([[token]]))
        return torch.cat([input_ids, torch.tensor([tokens])], dim=1)


@pytest.fixture
def cogvlm2(isolated_settings: Any) -> Iterator[tuple[ChatService, FakeCogVLM2]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(isolated_settings.models_dir / "tiny" / "llm")
    model = FakeCogVLM2(tokenizer)

    def load(ctx: LoadContext) -> LoadedModel:
        # no processor in CogVLM2's repo: AutoProcessor hands back its tokenizer
        bundle = VLMBundle(model, tokenizer, "cogvlm2", MODEL_ID, "cpu", "bfloat16")
        return LoadedModel(handle=bundle, device="cpu", dtype="bfloat16")

    manager = ModelManager(isolated_settings, loaders={"vlm": load})
    yield ChatService(manager, AdapterStore(isolated_settings)), model
    manager.unload_all()


def ask(chat: ChatService, session: ChatSession, text: str, images: list[Any]) -> Any:
    *_, update = chat.stream(session, text, images, "base", GEN)
    return update


def test_cogvlm2_answers_about_an_image_then_a_follow_up(cogvlm2: Any) -> None:
    chat, model = cogvlm2
    session = ChatSession()
    first = ask(chat, session, "What color is the shape?", [str(RED)])
    assert first.text == "I saw an image after 0 earlier questions."
    assert first.metrics.tokens > 0 and first.metrics.prompt_tokens > IMAGE_TOKENS
    built = model.built[-1]
    assert built["template"] == "chat" and built["query"] == "What color is the shape?"
    (image,) = built["images"]
    assert image.mode == "RGB"  # the uploaded picture, decoded (a PIL image)

    second = ask(chat, session, "And its size?", [])
    assert second.text == "I saw an image after 1 earlier questions."
    assert model.built[-1]["history"] == [("What color is the shape?", first.text)]
    assert model.built[-1]["query"] == "And its size?"


def test_cogvlm2_text_only_question_uses_the_model_cards_template(cogvlm2: Any) -> None:
    chat, model = cogvlm2
    answer = ask(chat, ChatSession(), "Hello there", [])
    assert answer.text == "I saw no image after 0 earlier questions."
    query = model.built[-1]["query"]
    assert query.startswith("A chat between a curious user") and "USER: Hello there" in query
    assert model.built[-1]["images"] is None


def test_cogvlm2_refuses_a_second_image_with_a_fix(cogvlm2: Any) -> None:
    chat, _ = cogvlm2
    session = ChatSession()
    ask(chat, session, "What color is the shape?", [str(RED)])
    with pytest.raises(BadInputError, match="one image per conversation") as err:
        ask(chat, session, "And this one?", [str(RED)])
    assert "new conversation" in str(err.value)
