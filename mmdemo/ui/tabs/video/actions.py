"""The Video tab's handlers, one named method each: summarise (streamed, cancellable), jump
to a clicked chapter, key frame, transcript line, search hit or citation, ask about the
video and search its key frames. Each calls ``VideoService`` and formats what the widgets
show (see ``view.py``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError
from mmdemo.flows.video.service import VideoService
from mmdemo.flows.video.types import Cancelled, Progress, VideoResult
from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.tabs.video.view import (
    VideoSession,
    answer_md,
    chapter_rows,
    citation_choices,
    downloads,
    frame_items,
    hit_items,
    status_md,
    summary_md,
    transcript_rows,
)

NO_VIDEO = "upload a video first (MP4, WebM, MKV or MOV)"


class VideoActions:
    """Handlers over the app's video service (``max_bytes``: the largest upload read)."""

    def __init__(self, service: VideoService, max_bytes: int) -> None:
        self.service = service
        self.max_bytes = max_bytes

    @guarded_stream
    def summarise(
        self,
        path: str | None,
        sess: VideoSession,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for one)
    ) -> Iterator[tuple]:
        if not path:
            raise BadInputError("there is no video yet", fix=NO_VIDEO)
        sess.stop = threading.Event()
        sess.result, sess.hits = None, []
        try:
            for message in self.service.run(path, sess.stop, self.max_bytes):
                if isinstance(message, Progress):
                    progress(message.overall, desc=message.describe())
                    yield status_md(message), *([gr.skip()] * 6)
                    continue
                sess.result = message  # a partial result after each step, then the last one
                yield (
                    status_md(message),
                    summary_md(message),
                    chapter_rows(message),
                    frame_items(message.key_frames),
                    transcript_rows(message),
                    gr.skip(),
                    sess,
                )
        except Cancelled:
            yield "Cancelled before anything finished.", *([gr.skip()] * 6)
            return
        if sess.result is not None:
            yield (*([gr.skip()] * 5), downloads(sess.result), sess)

    def cancel(self, sess: VideoSession) -> str:
        sess.stop.set()
        return "Cancelling… (finished steps are kept)"

    # -- jumping the player to a moment ------------------------------------------------------

    @staticmethod
    def moment(sess: VideoSession, kind: str, index: Any) -> float:
        """The time (seconds) of the ``index``-th chapter, key frame, line or search hit."""
        result = sess.result
        if result is None:
            raise gr.Error("Summarise a video first.", title="Nothing to jump to")
        row = index[0] if isinstance(index, (list, tuple)) else int(index)
        items = {
            "chapter": [c.start for c in result.chapters],
            "frame": [k.time for k in result.key_frames],
            "line": [s.start for s in result.transcript],
            "hit": [h.frame.time for h in sess.hits],
        }[kind]
        if not 0 <= row < len(items):
            raise gr.Error("That item is gone; summarise again.")
        return float(items[row])

    def chapter_clicked(self, sess: VideoSession, evt: gr.SelectData) -> float:
        return self.moment(sess, "chapter", evt.index)

    def frame_clicked(self, sess: VideoSession, evt: gr.SelectData) -> float:
        return self.moment(sess, "frame", evt.index)

    def line_clicked(self, sess: VideoSession, evt: gr.SelectData) -> float:
        return self.moment(sess, "line", evt.index)

    def hit_clicked(self, sess: VideoSession, evt: gr.SelectData) -> float:
        return self.moment(sess, "hit", evt.index)

    @staticmethod
    def citation_clicked(seconds: float) -> float:
        """A cited moment's value is its time already."""
        return seconds

    # -- asking and searching ----------------------------------------------------------------

    @staticmethod
    def current(sess: VideoSession) -> VideoResult:
        if sess.result is None:
            raise BadInputError("no video has been summarised in this session", fix=NO_VIDEO)
        return sess.result

    @guarded
    def ask(self, text: str, sess: VideoSession) -> tuple[str, Any]:
        reply = self.service.ask(self.current(sess), text)
        return answer_md(reply), gr.update(choices=citation_choices(reply), value=None)

    @guarded
    def search(self, text: str, sess: VideoSession) -> tuple[Any, VideoSession]:
        sess.hits = self.service.search(self.current(sess), text, k=12)
        return hit_items(sess.hits), sess
