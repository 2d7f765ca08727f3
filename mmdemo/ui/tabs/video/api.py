"""The Video tab's named endpoints: plain values in, data out (times in seconds).

``/video_summary(video)`` -> chapters, key frames, transcript, summary and a ``video_id``;
``/video_ask(video or video_id, question)`` -> {"answer", "citations", "notes"};
``/video_search(video or video_id, query_text, top_k)`` -> key frames ranked by a text.
Files arrive as uploads (``handle_file``), checked by ``upload_path``.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.errors import BadInputError
from mmdemo.flows.video.cache import ID_PATTERN
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.video.actions import NO_VIDEO
from mmdemo.ui.uploads import upload_path
from mmdemo.zerogpu import gpu


def register(ctx: AppContext, heavy: dict[str, Any]) -> None:
    """Publish the endpoints (all model work; ``heavy``: the video concurrency group)."""
    service = ctx.services.video
    limit = ctx.settings.max_upload_mb * 2**20

    def resolve(video: Any) -> Any:
        """A summarised video from an upload (summarised now if new) or a video_id string."""
        if isinstance(video, str):
            if ID_PATTERN.match(video.strip().lower()):
                return service.load(video)
            raise BadInputError(
                f"{video[:40]!r} is neither an uploaded file nor a video_id",
                fix="send the file with gradio_client.handle_file(path), or the video_id "
                "that /video_summary returned",
            )
        path = upload_path(video, "video")
        if not path:
            raise BadInputError("no video was sent", fix=NO_VIDEO)
        return service.summarize(path, max_bytes=limit)

    @gpu("video")
    @guarded
    def video_summary(video: FileData) -> dict[str, Any]:
        """Summarise a video file: chapters, key frames, transcript, summary, notes and the
        video_id for later questions (times in seconds)."""
        path = upload_path(video, "video")
        if not path:
            raise BadInputError("no video file was sent", fix="send it with handle_file(path)")
        return service.summarize(path, max_bytes=limit).to_json()

    @guarded
    def video_ask(video: FileData | str, question: str) -> dict[str, Any]:
        """Ask about a video (the file, or the video_id from /video_summary); the answer cites
        times in seconds."""
        reply = service.ask(resolve(video), question)
        return {
            "answer": reply.text,
            "citations": list(reply.citations),
            "notes": list(reply.notes),
        }

    @guarded
    def video_search(
        video: FileData | str, query_text: str, top_k: int = 8
    ) -> list[dict[str, Any]]:
        """Key frames of a video ranked by similarity to a text (CLIP)."""
        found = service.search(resolve(video), query_text, k=int(top_k))
        return [
            {
                "rank": h.rank,
                "time": round(h.frame.time, 2),
                "score": round(h.score, 4),
                "caption": h.frame.caption,
            }
            for h in found
        ]

    gr.api(ctx.heavy(video_summary), api_name="video_summary", **heavy)
    gr.api(ctx.heavy(video_ask), api_name="video_ask", **heavy)
    gr.api(ctx.heavy(video_search), api_name="video_search")
