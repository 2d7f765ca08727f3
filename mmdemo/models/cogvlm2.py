"""CogVLM2's chat inputs: its remote code (THUDM/cogvlm2-llama3-chat-19B, loaded only with the
gpu profile and MMDEMO_TRUST_REMOTE_CODE=1) ships no processor and no chat template; the model
itself turns a query, the earlier (question, answer) pairs and at most one image into its
inputs with ``build_conversation_input_ids``, as its model card's demo does:

    built = model.build_conversation_input_ids(tokenizer, query=..., history=[(q, a), ...],
                                               images=[image], template_version="chat")
    model.generate(input_ids=built["input_ids"][None], token_type_ids=..., attention_mask=...,
                   images=[[built["images"][0].to(dtype)]], ...)

This module maps the app's chat-template messages onto that interface; the family registry
names it as CogVLM2's input builder (``Family.inputs``), so flows never branch on the family.
"""

from __future__ import annotations

from typing import Any

from mmdemo.errors import BadInputError

# The model card's demo wraps a first question without an image in this (the remote code's
# "chat" template then adds nothing for a missing image).
TEXT_ONLY_TEMPLATE = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions. USER: {} ASSISTANT:"
)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if p.get("type") == "text").strip()


def query_and_history(messages: list[dict[str, Any]]) -> tuple[str, list[tuple[str, str]]]:
    """The last user message's text and the earlier (question, answer) pairs (system prompts
    have no place in CogVLM2's chat template and are left out)."""
    turns = [m for m in messages if m["role"] in ("user", "assistant")]
    if not turns or turns[-1]["role"] != "user":
        raise BadInputError("the conversation does not end with a question")
    history, question = [], None
    for message in turns[:-1]:
        if message["role"] == "user":
            question = _text(message["content"])
        elif question is not None:
            history.append((question, _text(message["content"])))
            question = None
    return _text(turns[-1]["content"]), history


def inputs(bundle: Any, messages: list[dict[str, Any]], images: list[Any]) -> dict[str, Any]:
    """``generate`` keyword arguments for ``messages`` and their ``images`` (one at most),
    built by the model's own ``build_conversation_input_ids``, batch of one, on its device."""
    if len(images) > 1:
        raise BadInputError(
            f"CogVLM2 reads one image per conversation; this one has {len(images)}",
            fix="start a new conversation for another image, or pick another model family",
        )
    query, history = query_and_history(messages)
    if not images and not history:
        query = TEXT_ONLY_TEMPLATE.format(query)
    model = bundle.model
    built = model.build_conversation_input_ids(
        bundle.tokenizer,
        query=query,
        history=history,
        images=list(images) or None,
        template_version="chat",
    )
    device = bundle.device
    keys = ("input_ids", "token_type_ids", "attention_mask")
    out = {k: built[k].unsqueeze(0).to(device) for k in keys}
    out["images"] = (
        [[built["images"][0].to(device).to(model.dtype)]]
        if images and built.get("images")
        else None
    )
    return out
