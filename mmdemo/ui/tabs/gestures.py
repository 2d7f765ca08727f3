"""Gestures tab: hands in an image, a video or the webcam -> gestures, a transcript; teach
new gestures. The work is done by ``GestureService`` (mmdemo.flows.gestures)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.errors import BadInputError
from mmdemo.flows.gestures.service import GestureService, VideoOptions
from mmdemo.flows.gestures.spelling import SpellingConfig
from mmdemo.ui.common import guarded, guarded_stream
from mmdemo.ui.context import AppContext
from mmdemo.ui.gestures_api import register_api
from mmdemo.ui.gestures_view import (
    HAND_HEADERS,
    MODES,
    TAUGHT_HEADERS,
    GestureSession,
    hand_rows,
    summary_md,
    taught_note,
    taught_rows,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "assets" / "images" / "gestures"


def gesture_service(ctx: AppContext) -> GestureService:
    return ctx.services.gestures


def build(ctx: AppContext) -> dict[str, Any]:
    service = gesture_service(ctx)
    settings = ctx.settings
    limits = dict(max_side=settings.max_image_side, max_bytes=settings.max_upload_mb * 2**20)

    gr.Markdown(
        "Show a hand: a picture, a video or the webcam. Each hand gets its skeleton and its "
        "gesture (9 named gestures, 21 static fingerspelling letters, wave and swipes); held "
        "letters spell a transcript. Teach your own gestures from 5-20 examples below."
    )
    state = gr.State(GestureSession)
    with gr.Row():
        with gr.Column(scale=1):
            # files, not gr.Image/gr.Video: our decoders check every upload (gradio's would
            # fail on a broken file with a generic message)
            image_in = gr.File(
                file_types=["image"], type="filepath", label="Image of a hand", elem_id="gest-image"
            )
            gr.Examples(sorted(str(p) for p in EXAMPLES.glob("*.png")), image_in, label="Try")
            with gr.Row():
                image_btn = gr.Button("Recognise", variant="primary", elem_id="gest-run")
                clip_box = gr.Checkbox(
                    label="Second opinion from CLIP", value=False, elem_id="gest-clip"
                )
            with gr.Accordion("Video file", open=False):
                video_in = gr.File(
                    file_types=["video"], type="filepath", label="Video", elem_id="gest-video"
                )
                with gr.Row():
                    fps = gr.Slider(1, 15, value=8, step=1, label="Frames analysed per second")
                    longest = min(120, settings.video_seconds / 60)  # the server's limit
                    minutes = gr.Slider(
                        0.5,
                        longest,
                        value=min(10, longest),
                        step=0.5,
                        label="Analyse at most (min)",
                    )
                with gr.Row():
                    video_btn = gr.Button("Analyse video", elem_id="gest-video-run")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="gest-video-stop")
            with gr.Accordion("Webcam (live)", open=False):
                cam = gr.Image(
                    sources=["webcam"],
                    streaming=True,
                    type="numpy",
                    label="Webcam",
                    elem_id="gest-cam",
                )
        with gr.Column(scale=2):
            annotated = gr.Image(
                label="Hands", type="pil", interactive=False, height=420, elem_id="gest-annotated"
            )
            summary = gr.Markdown(elem_id="gest-summary")
            hands_table = gr.Dataframe(
                headers=HAND_HEADERS, interactive=False, label="Hands", elem_id="gest-hands"
            )
            second = gr.Label(
                label="CLIP zero-shot on the hand crop (a second opinion)",
                num_top_classes=3,
                visible=False,
                elem_id="gest-second",
            )
            with gr.Row():
                mode = gr.Radio(MODES, value="spell", label="Transcript mode", elem_id="gest-mode")
                hold = gr.Slider(1, 15, value=4, step=1, label="Hold frames for a letter")
            transcript = gr.Textbox(label="Transcript", lines=2, elem_id="gest-transcript")
            with gr.Row():
                speak_btn = gr.Button("Read aloud", elem_id="gest-speak")
                clear_btn = gr.Button("Clear", elem_id="gest-clear")
            speech = gr.Audio(label="Spoken transcript", interactive=False, elem_id="gest-audio")

    with gr.Accordion("Teach a gesture", open=False):
        gr.Markdown(
            "Give 5-20 pictures of one hand making the new gesture (vary the angle a little), "
            "name it and teach: it is recognised from then on, by everyone using this server. "
            "Sets export to a JSON file (landmarks only, no pictures) and import back."
        )
        with gr.Row():
            teach_name = gr.Textbox(label="Name", placeholder="hello", elem_id="gest-teach-name")
            # hosted: visitors share the taught set; nothing in it is replaced or imported over
            replace = gr.Checkbox(
                label="Replace a taught gesture of that name",
                value=False,
                visible=not settings.hosted,
            )
        teach_files = gr.File(
            file_count="multiple", type="filepath", label="Examples", elem_id="gest-teach-files"
        )
        with gr.Row():
            teach_btn = gr.Button(
                "Teach",
                variant="primary",
                elem_id="gest-teach",
                visible=not settings.hosted or settings.allow_training,
            )
            delete_dd = gr.Dropdown(
                [], label="Taught gesture", allow_custom_value=True, elem_id="gest-taught-pick"
            )
            delete_btn = gr.Button(
                "Delete", variant="stop", elem_id="gest-delete", visible=not settings.hosted
            )
        taught = gr.Dataframe(
            headers=TAUGHT_HEADERS,
            interactive=False,
            label="Taught gestures",
            elem_id="gest-taught",
        )
        teach_info = gr.Markdown(elem_id="gest-teach-info")
        with gr.Row():
            export_btn = gr.Button("Export set", elem_id="gest-export")
            export_file = gr.File(label="Exported set", interactive=False)
            import_file = gr.File(
                label="Import a set (.json)",
                type="filepath",
                file_types=[".json"],
                elem_id="gest-import",
                visible=not settings.hosted,
            )

    def taught_view(note: str = "") -> tuple[Any, Any, str]:
        custom = service.custom
        gestures = custom.gestures()
        names = [g.name for g in gestures]
        return (
            taught_rows(gestures),
            gr.update(choices=names, value=None),
            taught_note(custom, note),
        )

    @guarded
    def recognise(path: str | None, with_clip: bool) -> tuple[Any, ...]:
        if not path:
            raise BadInputError("there is no image", fix="upload a picture of a hand")
        result = service.analyse_image(path, **limits)
        opinion = gr.update(visible=False)
        if with_clip and result.hands:
            from mmdemo.images import load_image

            scores = service.second_opinion(load_image(path, **limits), result.hands[0])
            opinion = gr.update(value=dict(scores), visible=True)
        notes = result.notes
        return (
            result.annotated,
            summary_md(result.hands, notes, result.seconds),
            hand_rows(result.hands),
            opinion,
        )

    @guarded_stream
    def analyse_video(
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
        for update in service.analyse_video(path, options, session.stop):
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

    def stop(session: GestureSession) -> str:
        session.stop.set()
        return "Stopping…"

    @guarded
    def webcam(frame: Any, how: str, frames: float, session: GestureSession) -> tuple[Any, ...]:
        if frame is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        live = session.stream(service, how, int(frames))
        update = live.process(frame, time.perf_counter() - session.started)
        return (
            update.annotated,
            summary_md(update.hands, update.notes),
            hand_rows(update.hands),
            update.transcript,
        )

    def clear(session: GestureSession) -> tuple[str, None]:
        if session.live is not None:
            session.live.clear()
        return "", None

    @guarded
    def speak(text: str) -> tuple[int, Any]:
        return service.speak(text or "")

    @guarded
    def teach(name: str, files: list[str] | None, again: bool) -> tuple[Any, ...]:
        _, skipped = service.teach(name, files or [], again)
        note = f"Taught **{name.strip()}**."
        if skipped:
            note += " Not used: " + "; ".join(skipped)
        gr.Info(f"Taught {name.strip()}: recognised from now on.")
        return (*taught_view(note), None)

    @guarded
    def delete(name: str | None) -> tuple[Any, ...]:
        if not name:
            raise BadInputError("no taught gesture picked", fix="pick one in the list")
        service.forget(name)
        return taught_view(f"Deleted {name}.")

    @guarded
    def export(request: gr.Request) -> str:
        # in the session's scratch folder: one user's export is not another's, and Gradio
        # serves it wherever MMDEMO_HOME is
        folder = ctx.session_folders().folder(request.session_hash if request else None)
        out = folder / "gestures.json"
        out.write_text(service.custom.export_json(), encoding="utf-8")
        return str(out)

    @guarded
    def import_set(path: str | None) -> tuple[Any, ...]:
        if not path:
            return taught_view()
        gestures = service.import_set(path)
        return taught_view(f"Imported: {len(gestures)} taught gesture(s) in the set.")

    heavy = dict(concurrency_id="hands", concurrency_limit=settings.concurrency)
    image_outputs = [annotated, summary, hands_table, second]
    recognise_event = ctx.heavy(recognise)
    image_btn.click(
        recognise_event, [image_in, clip_box], image_outputs, api_visibility="private", **heavy
    )
    image_in.upload(
        recognise_event, [image_in, clip_box], image_outputs, api_visibility="private", **heavy
    )
    video_event = video_btn.click(
        ctx.heavy(analyse_video),
        [video_in, fps, minutes, mode, hold, state],
        [annotated, summary, transcript],
        api_visibility="private",
        **heavy,
    )
    stop_btn.click(
        stop, state, summary, cancels=[video_event], queue=False, api_visibility="private"
    )
    # each webcam frame runs the hand tracker: a fraction of a request
    cam.stream(
        ctx.heavy(webcam, stream=True),
        [cam, mode, hold, state],
        [annotated, summary, hands_table, transcript],
        stream_every=0.15,
        time_limit=None,
        concurrency_limit=None,
        api_visibility="private",
        show_progress="hidden",
    )
    clear_btn.click(clear, state, [transcript, speech], queue=False, api_visibility="private")
    speak_btn.click(ctx.heavy(speak), transcript, speech, api_visibility="private")
    teach_btn.click(
        ctx.heavy(teach),
        [teach_name, teach_files, replace],
        [taught, delete_dd, teach_info, teach_files],
        api_visibility="private",
        **heavy,
    )
    # forgetting or importing gestures retrains the taught classifier
    delete_btn.click(
        ctx.heavy(delete), delete_dd, [taught, delete_dd, teach_info], api_visibility="private"
    )
    export_btn.click(
        ctx.light(export, "writes the taught set's landmarks to a JSON file"),
        None,
        export_file,
        api_visibility="private",
    )
    import_file.upload(
        ctx.heavy(import_set),
        import_file,
        [taught, delete_dd, teach_info],
        api_visibility="private",
    )
    register_api(ctx, limits, heavy)
    return {
        "on_load": (lambda: taught_view(), [taught, delete_dd, teach_info]),
        "image_in": image_in,
        "run": image_btn,
        "annotated": annotated,
        "summary": summary,
        "hands": hands_table,
        "transcript": transcript,
        "video_in": video_in,
        "cam": cam,
        "teach": teach_btn,
    }
