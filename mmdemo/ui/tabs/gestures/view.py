"""What the Gestures tab shows (tables, status lines) and its per-session state; no gradio."""

from __future__ import annotations

import threading
import time
from typing import Any

from mmdemo.flows.gestures.service import GestureService, LiveSession
from mmdemo.flows.gestures.spelling import SpellingConfig
from mmdemo.flows.gestures.types import HandResult

HAND_HEADERS = ["hand", "gesture", "confidence", "size px"]
TAUGHT_HEADERS = ["gesture", "examples", "training accuracy"]
MODES = [("fingerspelling: letters make words", "spell"), ("gesture names", "gestures")]


class GestureSession:
    """One browser session: its live stream state, a stop switch for video, the transcript."""

    def __init__(self) -> None:
        self.live: LiveSession | None = None
        self.started = 0.0
        self.mode = "spell"
        self.hold = 4
        self.stop = threading.Event()

    def __deepcopy__(self, memo: dict) -> GestureSession:
        return GestureSession()

    def stream(self, service: GestureService, mode: str, hold: int) -> LiveSession:
        """The live session, made afresh when the transcript settings change."""
        if self.live is None or (mode, int(hold)) != (self.mode, self.hold):
            self.live = service.live(SpellingConfig(hold_frames=int(hold), mode=mode))
            self.mode, self.hold, self.started = mode, int(hold), time.perf_counter()
        return self.live


def hand_rows(hands: tuple[HandResult, ...] | list[HandResult]) -> list[list[Any]]:
    return [[h.handedness, h.label, f"{h.confidence:.0%}", f"{h.size_px:.0f}"] for h in hands]


def taught_rows(gestures: list[Any]) -> list[list[Any]]:
    return [[g.name, g.examples, f"{g.train_accuracy:.0%}"] for g in gestures]


def taught_note(custom: Any, note: str = "") -> str:
    """What the taught-gesture section says: ``note``, after why taught gestures are off when
    the set on the server cannot be read."""
    if custom.damage is None:
        return note
    return f"**Taught gestures are off:** {custom.damage}" + (f"\n\n{note}" if note else "")


def summary_md(hands: tuple[HandResult, ...], notes: tuple[str, ...], seconds: float = 0) -> str:
    if hands:
        names = ", ".join(f"**{h.label}** ({h.confidence:.0%})" for h in hands)
        text = f"{len(hands)} hand(s): {names}"
    else:
        text = "No hand found."
    if seconds:
        text += f" · {seconds * 1000:.0f} ms"
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return text
