"""Video tab: upload a video, get chapters, key frames, a transcript and a summary; click a
chapter, key frame, transcript line or citation to jump the player there; ask about the video
and search its key frames by text. Layout and wiring only: the handlers are in
``actions.py``, the named endpoints in ``api.py``, the work in ``VideoService``
(mmdemo.flows.video).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.video import api
from mmdemo.ui.tabs.video.actions import VideoActions
from mmdemo.ui.tabs.video.view import CHAPTER_HEADERS, TRANSCRIPT_HEADERS, VideoSession
from mmdemo.zerogpu import gpu

# Jump the player to a time (seconds) held by the hidden "seek" number.
SEEK_JS = """(t) => {
  const v = document.querySelector('#video-player video');
  if (v && t !== null && t !== undefined && t >= 0) { v.currentTime = t; v.play().catch(() => {}); }
  return [];
}"""


def build(ctx: AppContext) -> dict[str, Any]:
    act = VideoActions(ctx.services.video, ctx.settings.max_upload_mb * 2**20)
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

    outputs = [status, summary, chapters, frames, transcript, files, session]
    summarise_event = ctx.heavy(gpu("video")(act.summarise))
    run_btn.click(summarise_event, [video, session], outputs, api_visibility="private", **heavy)
    video.upload(summarise_event, [video, session], outputs, api_visibility="private", **heavy)
    cancel_btn.click(act.cancel, session, status, queue=False, api_visibility="private")
    jump = dict(api_visibility="private", queue=False)
    for component, handler in (
        (chapters, act.chapter_clicked),
        (frames, act.frame_clicked),
        (transcript, act.line_clicked),
        (hits, act.hit_clicked),
    ):
        component.select(handler, session, seek, **jump).then(None, seek, None, js=SEEK_JS)
    cites.input(act.citation_clicked, cites, seek, **jump).then(None, seek, None, js=SEEK_JS)
    ask_args = dict(concurrency_id="video-ask", concurrency_limit=ctx.settings.concurrency)
    ask_event, search_event = (
        ctx.heavy(act.ask),
        ctx.heavy(act.search),
    )  # the LLM; CLIP on the query
    for trigger in (ask_btn.click, question.submit):
        trigger(
            ask_event, [question, session], [answer, cites], api_visibility="private", **ask_args
        )
    for trigger in (search_btn.click, query.submit):
        trigger(search_event, [query, session], [hits, session], api_visibility="private")
    api.register(ctx, heavy)
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
