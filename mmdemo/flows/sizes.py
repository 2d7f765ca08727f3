"""Size caps that every path into the chat shares (the chat tab, ``/chat``, ``/v1``, the voice
assistant): characters of the whole conversation and images per question. Both are checked
before any image is decoded, so an oversized request costs almost nothing."""

from __future__ import annotations

from mmdemo.errors import BadInputError


def check_message(chars: int, limit: int) -> None:
    """Refuse one message over ``limit`` characters."""
    if chars > limit:
        raise BadInputError(
            f"the message has {chars} characters; the limit is {limit}",
            fix="shorten the message, or split it over several questions",
        )


def check_conversation(chars: int, limit: int) -> None:
    """Refuse a conversation (every turn, the system prompt, the new message) over ``limit``."""
    if chars > limit:
        raise BadInputError(
            f"the conversation has {chars:,} characters; this server's limit is {limit:,}",
            fix="start a new conversation (Clear), or send fewer or shorter earlier turns "
            "(the operator sets the limit with MMDEMO_MAX_CONVERSATION_CHARS)",
        )


def check_image_count(count: int, limit: int) -> None:
    """Refuse a question with more images than a prompt shows (they would be decoded for
    nothing)."""
    if count > limit:
        raise BadInputError(
            f"the question has {count} images; at most {limit} go into a prompt",
            fix=f"send at most {limit} images with one question",
        )
