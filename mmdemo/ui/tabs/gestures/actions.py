"""The Gestures tab's handlers, one named method each: recognise an image, analyse a video
(stoppable), follow the webcam, read the transcript aloud, and teach, forget, export or
import taught gestures. Each calls ``GestureService`` and formats what the widgets show."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError
from mmdemo.flows.gestures.service import GestureService, VideoOptions
from mmdemo.flows.gestures.spelling import SpellingConfig
from mmdemo.images import load_image
from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.sessions import SessionFolders
from mmdemo.ui.tabs.gestures.view import (
    GestureSession,
    hand_rows,
    summary_md,
    taught_note,
    taught_rows,
)


class GestureActions:
    """Handlers over the app's gesture service (``limits``: the image decoder's limits;
    ``folders``: where exports are written)."""

    def __init__(
        self, service: GestureService, limits: dict[str, Any], folders: SessionFolders
    ) -> None:
        self.service = service
        self.limits = limits
        self.folders = folders

    def taught_view(self, note: str = "") -> tuple[Any, Any, str]:
        """The taught-gesture table, its menu and the note under them."""
        custom = self.service.custom
        gestures = custom.gestures()
        names = [g.name for g in gestures]
        return (
            taught_rows(gestures),
            gr.update(choices=names, value=None),
            taught_note(custom, note),
        )

    def on_load(self) -> tuple[Any, Any, str]:
        return self.taught_view()

    # -- recognising ------------------------------------------------------------------------

    @guarded
    def recognise(self, path: str | None, with_clip: bool) -> tuple[Any, ...]:
        if not path:
            raise BadInputError("there is no image", fix="upload a picture of a hand")
        result = self.service.analyse_image(path, **self.limits)
        opinion = gr.update(visible=False)
        if with_clip and result.hands:
            scores = self.service.second_opinion(load_image(path, **self.limits), result.hands[0])
            opinion = gr.update(value=dict(scores), visible=True)
        return (
            result.annotated,
            summary_md(result.hands, result.notes, result.seconds),
            hand_rows(result.hands),
            opinion,
        )

    @guarded_stream
    def analyse_video(
        self,
        path: str | None,
        rate: float,
        max_minutes: float,
        how: str,
        frames: float,
        session: GestureSession,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> Iterator[tuple[Any, ...]]:
        if not path:
            raise BadInputError("there is no video", fix="upload a video file first")
        session.stop.clear()
        options = VideoOptions(
            fps=float(rate),
            max_seconds=float(max_minutes) * 60,
            spelling=SpellingConfig(hold_frames=int(frames), mode=how),
        )
        for update in self.service.analyse_video(path, options, session.stop):
            progress(
                (round(update.done_s, 1), round(update.total_s, 1)),
                desc="analysing the video",
                unit="s of video",
            )
            if update.result is None:
                yield (
                    update.frame,
                    f"{update.done_s:.0f} / {update.total_s:.0f} s",
                    update.transcript,
                )
            else:
                res = update.result
                found = sum(1 for _, h in res.frames if h)
                text = (
                    f"{len(res.frames)} frames analysed ({res.analysed_s:.1f} s of video), a hand "
                    f"in {found}; moving gestures: "
                    + (", ".join(m.gesture.replace("_", " ") for m in res.motions) or "none")
                )
                if res.notes:
                    text += "\n\n" + "\n".join(f"- {n}" for n in res.notes)
                yield update.frame if update.frame is not None else gr.skip(), text, res.transcript

    def stop(self, session: GestureSession) -> str:
        session.stop.set()
        return "Stopping…"

    @guarded
    def webcam(
        self, frame: Any, how: str, frames: float, session: GestureSession
    ) -> tuple[Any, ...]:
        if frame is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        live = session.stream(self.service, how, int(frames))
        update = live.process(frame, time.perf_counter() - session.started)
        return (
            update.annotated,
            summary_md(update.hands, update.notes),
            hand_rows(update.hands),
            update.transcript,
        )

    def clear(self, session: GestureSession) -> tuple[str, None]:
        if session.live is not None:
            session.live.clear()
        return "", None

    @guarded
    def speak(self, text: str) -> tuple[int, Any]:
        return self.service.speak(text or "")

    # -- teaching ----------------------------------------------------------------------------

    @guarded
    def teach(self, name: str, files: list[str] | None, again: bool) -> tuple[Any, ...]:
        _, skipped = self.service.teach(name, files or [], again)
        note = f"Taught **{name.strip()}**."
        if skipped:
            note += " Not used: " + "; ".join(skipped)
        gr.Info(f"Taught {name.strip()}: recognised from now on.")
        return (*self.taught_view(note), None)

    @guarded
    def delete(self, name: str | None) -> tuple[Any, ...]:
        if not name:
            raise BadInputError("no taught gesture picked", fix="pick one in the list")
        self.service.forget(name)
        return self.taught_view(f"Deleted {name}.")

    @guarded
    def export(self, request: gr.Request) -> str:
        # in the session's scratch folder: one user's export is not another's, and Gradio
        # serves it wherever MMDEMO_HOME is
        folder = self.folders.folder(request.session_hash if request else None)
        out = folder / "gestures.json"
        out.write_text(self.service.custom.export_json(), encoding="utf-8")
        return str(out)

    @guarded
    def import_set(self, path: str | None) -> tuple[Any, ...]:
        if not path:
            return self.taught_view()
        gestures = self.service.import_set(path)
        return self.taught_view(f"Imported: {len(gestures)} taught gesture(s) in the set.")
