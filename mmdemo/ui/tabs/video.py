"""Video tab: upload a video, get chapters, key frames, a transcript and a summary; click a
chapter, key frame, transcript line or citation to jump the player there; ask about the video
and search its key frames by text. The work is done by ``VideoService`` (mmdemo.flows.video).

API (gradio_client): ``/video_summary`` (file) -> dict, ``/video_ask`` (file or video_id,
question) -> {"answer", "citations"}, ``/video_search`` (file or video_id, text, k) -> list.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.errors import BadInputError
from mmdemo.flows.video.cache import ID_PATTERN
from mmdemo.flows.video.types import Cancelled, Progress
from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path
from mmdemo.ui.video_view import (
    CHAPTER_HEADERS,
    TRANSCRIPT_HEADERS,
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
from mmdemo.zerogpu import gpu

# Jump the player to a time (seconds) held by the hidden "seek" number.
SEEK_JS = """(t) => {
  const v = document.querySelector('#video-player video');
  if (v && t !== null && t !== undefined && t >= 0) { v.currentTime = t; v.play().catch(() => {}); }
  return [];
}"""
NO_VIDEO = "upload a video first (MP4, WebM, MKV or MOV)"


def build(ctx: AppContext) -> dict[str, Any]:
    service = ctx.services.video
    limit = ctx.settings.max_upload_mb * 2**20
    heavy = dict(concurrency_id="video", concurrency_limit=ctx.settings.concurrency)

    gr.Markdown(
        "Upload a video: it is cut into shots, its speech transcribed, its key frames captioned, "
        "and a summary written with chapters. Click a chapter, key frame, transcript line or "
        "cited moment to jump there. Results are cached per file: asking again recomputes "
        "nothing."
    )
    session = gr.State(VideoSession)
    with gr.Row():
        with gr.Column(scale=3):
            video = gr.Video(
                label="Video (MP4, WebM, MKV or MOV; audio files work too)",
                sources=["upload"],
                format=None,
                height=340,
                elem_id="video-player",
            )
            with gr.Row():
                run_btn = gr.Button("Summarise", variant="primary", elem_id="video-run")
                cancel_btn = gr.Button("Cancel", variant="stop", elem_id="video-cancel")
            status = gr.Markdown(elem_id="video-status")
        with gr.Column(scale=4):
            summary = gr.Markdown(label="Summary", elem_id="video-summary")
            chapters = gr.Dataframe(
                headers=CHAPTER_HEADERS,
                interactive=False,
                wrap=True,
                label="Chapters (click to jump)",
                elem_id="video-chapters",
            )
    frames = gr.Gallery(
        label="Key frames (click to jump)",
        columns=6,
        height="auto",
        object_fit="contain",
        allow_preview=False,
        elem_id="video-frames",
    )
    with gr.Row():
        transcript = gr.Dataframe(
            headers=TRANSCRIPT_HEADERS,
            interactive=False,
            wrap=True,
            max_height=280,
            label="Transcript (click to jump)",
            elem_id="video-transcript",
            scale=3,
        )
        files = gr.File(
            label="Downloads: SRT, VTT, JSON, Markdown",
            file_count="multiple",
            interactive=False,
            elem_id="video-downloads",
            scale=1,
        )
    with gr.Row():
        question = gr.Textbox(
            label="Ask about the video",
            placeholder="What is said about …?",
            elem_id="video-question",
            scale=4,
        )
        ask_btn = gr.Button("Ask", elem_id="video-ask", scale=1)
    answer = gr.Markdown(elem_id="video-answer")
    cites = gr.Radio(label="Cited moments (click to jump)", choices=[], elem_id="video-citations")
    with gr.Row():
        query = gr.Textbox(
            label="Search the key frames (CLIP)",
            placeholder="a cat",
            elem_id="video-query",
            scale=4,
        )
        search_btn = gr.Button("Search", elem_id="video-search", scale=1)
    hits = gr.Gallery(
        label="Matching key frames (click to jump)",
        columns=6,
        height="auto",
        object_fit="contain",
        allow_preview=False,
        elem_id="video-hits",
    )
    seek = gr.Number(visible=False, elem_id="video-seek")

    @gpu("video")
    @guarded_stream
    def summarise(
        path: str | None,
        sess: VideoSession,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for one)
    ) -> Iterator[tuple]:
        if not path:
            raise BadInputError("there is no video yet", fix=NO_VIDEO)
        sess.stop = threading.Event()
        sess.result, sess.hits = None, []
        try:
            for message in service.run(path, sess.stop, limit):
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

    def cancel(sess: VideoSession) -> str:
        sess.stop.set()
        return "Cancelling… (finished steps are kept)"

    def moment(sess: VideoSession, kind: str, index: Any) -> float:
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

    def chapter_clicked(sess: VideoSession, evt: gr.SelectData) -> float:
        return moment(sess, "chapter", evt.index)

    def frame_clicked(sess: VideoSession, evt: gr.SelectData) -> float:
        return moment(sess, "frame", evt.index)

    def line_clicked(sess: VideoSession, evt: gr.SelectData) -> float:
        return moment(sess, "line", evt.index)

    def hit_clicked(sess: VideoSession, evt: gr.SelectData) -> float:
        return moment(sess, "hit", evt.index)

    def current(sess: VideoSession) -> Any:
        if sess.result is None:
            raise BadInputError("no video has been summarised in this session", fix=NO_VIDEO)
        return sess.result

    @guarded
    def ask(text: str, sess: VideoSession) -> tuple[str, Any]:
        reply = service.ask(current(sess), text)
        return answer_md(reply), gr.update(choices=citation_choices(reply), value=None)

    @guarded
    def search(text: str, sess: VideoSession) -> tuple[Any, VideoSession]:
        sess.hits = service.search(current(sess), text, k=12)
        return hit_items(sess.hits), sess

    # -- API: plain functions returning data -------------------------------------------------

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

    outputs = [status, summary, chapters, frames, transcript, files, session]
    summarise_event = ctx.heavy(summarise)
    run_btn.click(summarise_event, [video, session], outputs, api_visibility="private", **heavy)
    video.upload(summarise_event, [video, session], outputs, api_visibility="private", **heavy)
    cancel_btn.click(cancel, session, status, queue=False, api_visibility="private")
    jump = dict(api_visibility="private", queue=False)
    for component, handler in (
        (chapters, chapter_clicked),
        (frames, frame_clicked),
        (transcript, line_clicked),
        (hits, hit_clicked),
    ):
        component.select(handler, session, seek, **jump).then(None, seek, None, js=SEEK_JS)
    cites.input(lambda t: t, cites, seek, **jump).then(None, seek, None, js=SEEK_JS)
    ask_args = dict(concurrency_id="video-ask", concurrency_limit=ctx.settings.concurrency)
    ask_event, search_event = ctx.heavy(ask), ctx.heavy(search)  # the LLM; CLIP on the query
    for trigger in (ask_btn.click, question.submit):
        trigger(
            ask_event, [question, session], [answer, cites], api_visibility="private", **ask_args
        )
    for trigger in (search_btn.click, query.submit):
        trigger(search_event, [query, session], [hits, session], api_visibility="private")
    gr.api(ctx.heavy(video_summary), api_name="video_summary", **heavy)
    gr.api(ctx.heavy(video_ask), api_name="video_ask", **heavy)
    gr.api(ctx.heavy(video_search), api_name="video_search")
    return {
        "video": video,
        "run": run_btn,
        "cancel": cancel_btn,
        "status": status,
        "summary": summary,
        "chapters": chapters,
        "frames": frames,
        "transcript": transcript,
        "downloads": files,
        "question": question,
        "answer": answer,
        "citations": cites,
        "query": query,
        "hits": hits,
        "seek": seek,
    }
