"""Per-frame gestures -> a running transcript, with temporal smoothing.

A class counts when it is held for ``hold_frames`` frames in a row; the same class counts
again only after a *release* (something else, or no hand, for ``release_frames`` frames), so
"LL" needs the hand to let go between the two L's. No hand for ``gap_frames`` frames, or an
open palm held, ends the word. Letters spell words; named gestures and moving gestures add
their word in brackets ("HELLO (thumbs up)"); in ``gestures`` mode every gesture adds its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmdemo.errors import BadInputError
from mmdemo.flows.gestures.vocabulary import NONE, WORD_BREAK, lookup

MODES = ("spell", "gestures")


@dataclass(frozen=True)
class SpellingConfig:
    """Smoothing over sampled frames."""

    hold_frames: int = 4  # frames a gesture must be held to count
    release_frames: int = 2  # frames of something else before the same gesture counts again
    gap_frames: int = 8  # frames without a hand that end the current word
    mode: str = "spell"  # spell: letters make words; gestures: every gesture adds its name

    def __post_init__(self) -> None:
        if min(self.hold_frames, self.release_frames, self.gap_frames) < 1:
            raise BadInputError(
                "hold, release and gap frames must be at least 1", fix="use whole numbers >= 1"
            )
        if self.mode not in MODES:
            raise BadInputError(
                f"transcript mode {self.mode!r} is not one of {', '.join(MODES)}",
                fix="pick spell (fingerspelling) or gestures (gesture names)",
            )


@dataclass
class Transcriber:
    """Feed one decision per frame; read ``text``."""

    config: SpellingConfig = field(default_factory=SpellingConfig)
    custom: tuple[str, ...] = ()
    tokens: list[str] = field(default_factory=list)  # words and letters, "" = word break
    _run: str = ""  # the class being held and for how many frames
    _run_len: int = 0
    _last: str = ""  # the last class that counted
    _other: int = 0  # frames since the last counted class was seen
    _gap: int = 0  # frames without a hand

    @property
    def text(self) -> str:
        words, current = [], ""
        for token in self.tokens:
            if token == "":
                if current:
                    words.append(current)
                current = ""
            elif token.startswith("("):
                if current:
                    words.append(current)
                words.append(token)
                current = ""
            else:
                current += token
        if current:
            words.append(current)
        return " ".join(words)

    def feed(self, name: str | None) -> str | None:
        """One frame's gesture (None: no hand, "none": no known gesture); returns the token
        that counted on this frame, if any."""
        cfg = self.config
        if name is None:
            self._gap += 1
            if self._gap == cfg.gap_frames:
                self._break()
        else:
            self._gap = 0
        state = name or NONE
        if state != self._last:
            self._other += 1
            if self._other >= cfg.release_frames:
                self._last = ""  # released: the same gesture may count again
        else:
            self._other = 0
        self._run_len = self._run_len + 1 if state == self._run else 1
        self._run = state
        if state == NONE or self._run_len != cfg.hold_frames or state == self._last:
            return None
        self._last, self._other = state, 0
        if state == WORD_BREAK:
            self._break()
            return ""
        return self.add(state)

    def add(self, name: str) -> str | None:
        """Append the token for ``name`` (a moving gesture goes straight here)."""
        cls = lookup(name, self.custom)
        if cls.name == NONE:
            return None
        if self.config.mode == "spell" and cls.letter:
            token = cls.letter
        elif cls.word:
            token = f"({cls.word})"
        elif cls.letter:
            token = f"({cls.label})"
        else:
            return None
        self.tokens.append(token)
        return token

    def _break(self) -> None:
        if self.tokens and self.tokens[-1] != "":
            self.tokens.append("")

    def clear(self) -> None:
        self.tokens.clear()
        self._run, self._run_len, self._last, self._other, self._gap = "", 0, "", 0, 0
