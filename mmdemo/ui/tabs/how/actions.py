"""The How-it-works tab's event handlers, one named method per action. Each calls
``HowItWorks`` (mmdemo.flows.how.service: plain values in, data out) and turns the data into
widget updates."""

from __future__ import annotations

from typing import Any

from mmdemo.flows.how.service import HowItWorks
from mmdemo.ui.common import guarded
from mmdemo.ui.tabs.how import view


class HowActions:
    def __init__(self, api: HowItWorks) -> None:
        self.api = api

    # -- anatomy --------------------------------------------------------------------------
    @guarded
    def parts(self) -> tuple[list[list[Any]], str]:
        data = self.api.model_parts()
        return view.parts_rows(data), view.parts_md(data)

    @guarded
    def tokens(self, image: str | None) -> tuple[str, str]:
        data = self.api.image_tokens(image)
        return data["picture"], view.tokens_md(data)

    @guarded
    def plan(self, method: str, attach: str, rank: float) -> tuple[str, list[list[Any]]]:
        data = self.api.method_plan(method, attach, int(rank))
        return view.plan_md(data), view.plan_rows(data)

    # -- contrastive ----------------------------------------------------------------------
    def _contrast(
        self, images: list[str] | None, captions: str, samples: bool, shuffle: bool, seed: int
    ) -> tuple[Any, ...]:
        data = self.api.contrastive(images, captions, shuffle, samples, seed)
        return data["heatmap"], view.contrast_md(data), view.contrast_frame(data)

    @guarded
    def contrast(self, images: list[str] | None, captions: str, samples: bool) -> tuple[Any, ...]:
        return self._contrast(images, captions, samples, False, 0)

    @guarded
    def shuffle(
        self, shuffles: int, images: list[str] | None, captions: str, samples: bool
    ) -> tuple[Any, ...]:
        """Each click pairs the captions another way (the session counts its shuffles)."""
        shuffles = int(shuffles or 0)
        return (*self._contrast(images, captions, samples, True, shuffles), shuffles + 1)

    # -- few-shot -------------------------------------------------------------------------
    @guarded
    def few_shot(
        self,
        images: list[str] | None,
        labels: str,
        folder: str,
        shots: str,
        episodes: float,
        samples: bool,
    ) -> tuple[list[list[Any]], str]:
        data = self.api.few_shot(images, labels, folder, shots, int(episodes), 0, samples)
        return view.shot_rows(data), view.fewshot_md(data)

    # -- audio ----------------------------------------------------------------------------
    @guarded
    def units(
        self, audio: str | None, k: float, seed: float, compare: str | None = None
    ) -> tuple[str, str, str]:
        data = self.api.audio_units(audio, int(k), int(seed), compare)
        return view.units_md(data), view.units_text(data), view.units_text(data.get("compared"))
