"""Gestures tab: hands in an image, a video or the webcam -> gestures, a transcript; teach
new gestures. Layout and wiring only: the handlers are in ``actions.py``, the named endpoints
in ``api.py``, the work in ``GestureService`` (mmdemo.flows.gestures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from mmdemo.ui.context import AppContext
from mmdemo.ui.tabs.gestures import api
from mmdemo.ui.tabs.gestures.actions import GestureActions
from mmdemo.ui.tabs.gestures.view import HAND_HEADERS, MODES, TAUGHT_HEADERS, GestureSession

EXAMPLES = Path(__file__).resolve().parents[4] / "assets" / "images" / "gestures"


def build(ctx: AppContext) -> dict[str, Any]:
    settings = ctx.settings
    limits = dict(max_side=settings.max_image_side, max_bytes=settings.max_upload_mb * 2**20)
    act = GestureActions(ctx.services.gestures, limits, ctx.session_folders())

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

    heavy = dict(concurrency_id="hands", concurrency_limit=settings.concurrency)
    image_outputs = [annotated, summary, hands_table, second]
    recognise_event = ctx.heavy(act.recognise)
    image_btn.click(
        recognise_event, [image_in, clip_box], image_outputs, api_visibility="private", **heavy
    )
    image_in.upload(
        recognise_event, [image_in, clip_box], image_outputs, api_visibility="private", **heavy
    )
    video_event = video_btn.click(
        ctx.heavy(act.analyse_video),
        [video_in, fps, minutes, mode, hold, state],
        [annotated, summary, transcript],
        api_visibility="private",
        **heavy,
    )
    stop_btn.click(
        act.stop, state, summary, cancels=[video_event], queue=False, api_visibility="private"
    )
    # each webcam frame runs the hand tracker: a fraction of a request
    cam.stream(
        ctx.heavy(act.webcam, stream=True),
        [cam, mode, hold, state],
        [annotated, summary, hands_table, transcript],
        stream_every=0.15,
        time_limit=None,
        concurrency_limit=None,
        api_visibility="private",
        show_progress="hidden",
    )
    clear_btn.click(act.clear, state, [transcript, speech], queue=False, api_visibility="private")
    speak_btn.click(ctx.heavy(act.speak), transcript, speech, api_visibility="private")
    teach_btn.click(
        ctx.heavy(act.teach),
        [teach_name, teach_files, replace],
        [taught, delete_dd, teach_info, teach_files],
        api_visibility="private",
        **heavy,
    )
    # forgetting or importing gestures retrains the taught classifier
    delete_btn.click(
        ctx.heavy(act.delete), delete_dd, [taught, delete_dd, teach_info], api_visibility="private"
    )
    export_btn.click(
        ctx.light(act.export, "writes the taught set's landmarks to a JSON file"),
        None,
        export_file,
        api_visibility="private",
    )
    import_file.upload(
        ctx.heavy(act.import_set),
        import_file,
        [taught, delete_dd, teach_info],
        api_visibility="private",
    )
    api.register(ctx, limits, heavy)
    return {
        "on_load": (act.on_load, [taught, delete_dd, teach_info]),
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
