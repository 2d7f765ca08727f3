"""What each class means: its display name, the fingerspelling letter it stands for, the word
it adds to a transcript. Shared by the built-in classes, moving gestures and taught ones."""

from __future__ import annotations

from dataclasses import dataclass

NONE = "none"


@dataclass(frozen=True)
class GestureClass:
    name: str  # id used by the classifier and the API, e.g. "thumbs_up", "A"
    label: str  # what the user reads
    letter: str | None = None  # the ASL fingerspelling letter it stands for
    word: str | None = None  # what a gesture adds to the transcript (not for letters)
    emoji: str = ""


BUILTIN: tuple[GestureClass, ...] = (
    GestureClass("open_palm", "open palm", None, None, "✋"),  # a word break
    GestureClass("fist", "fist", "S", "fist", "✊"),
    GestureClass("thumbs_up", "thumbs up", None, "thumbs up", "👍"),
    GestureClass("thumbs_down", "thumbs down", None, "thumbs down", "👎"),
    GestureClass("pointing_up", "pointing up", "D", "pointing up", "☝️"),
    GestureClass("victory", "victory", "V", "victory", "✌️"),
    GestureClass("i_love_you", "I love you", None, "I love you", "🤟"),
    GestureClass("call_me", "call me", "Y", "call me", "🤙"),
    GestureClass("ok", "OK", "F", "OK", "👌"),
    *(GestureClass(c, f"letter {c}", c) for c in "ABCEGHIKLOPQRUWX"),
)
MOVING_CLASSES: tuple[GestureClass, ...] = (
    GestureClass("wave", "wave", None, "wave", "👋"),
    GestureClass("swipe_left", "swipe left", None, "swipe left", "⬅️"),
    GestureClass("swipe_right", "swipe right", None, "swipe right", "➡️"),
)
BUILTIN_NAMES = tuple(c.name for c in BUILTIN)
STATIC_GESTURES = BUILTIN_NAMES[:9]  # the named gestures (not letters)
WORD_BREAK = "open_palm"


def lookup(name: str, custom: tuple[str, ...] = ()) -> GestureClass:
    """The class called ``name``; taught gestures spell their name as a word (one letter:
    a letter)."""
    for c in (*BUILTIN, *MOVING_CLASSES):
        if c.name == name:
            return c
    if name in custom:
        letter = name.upper() if len(name) == 1 and name.isalpha() else None
        return GestureClass(name, name, letter, None if letter else name)
    return GestureClass(NONE, NONE)
