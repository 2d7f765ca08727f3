"""The Gestures tab's named endpoints: plain values in, data out (dicts, lists, file paths).

``/gestures(image)``, ``/gestures_video(video, frames_per_second, max_seconds)``,
``/gesture_teach(name, example_images, replace_existing)``, ``/gesture_delete(name)``,
``/gesture_list()``, ``/gesture_export()``, ``/gesture_speak(text)``.

Files arrive as uploads (``handle_file``) and are decoded by our decoders, so a wrong file is
refused with its cause and a fix, not a framework error.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr
from gradio.data_classes import FileData

from mmdemo.errors import BadInputError
from mmdemo.flows.gestures.service import GestureService, VideoOptions
from mmdemo.ui.common import guarded
from mmdemo.ui.context import AppContext
from mmdemo.ui.uploads import upload_path


def taught_list(service: GestureService) -> list[dict[str, Any]]:
    """Every taught gesture: name, example count, training accuracy; a set that cannot be
    read is one entry saying why ({"error", "fix"}): taught gestures are off meanwhile."""
    damage = service.custom.damage
    if damage is not None:
        return [{"error": damage.message, "fix": damage.fix}]
    return [
        {"name": g.name, "examples": g.examples, "train_accuracy": round(g.train_accuracy, 4)}
        for g in service.custom.gestures()
    ]


def register(ctx: AppContext, limits: dict[str, Any], heavy: dict[str, Any]) -> None:
    """Publish the endpoints (``heavy``: the hand-tracking concurrency group)."""
    service, folders = ctx.services.gestures, ctx.session_folders()

    def gestures(image: FileData) -> dict:
        """Hands in an image: {"hands": [{handedness, gesture, confidence, landmarks}], ...}."""
        path = upload_path(image, "image")
        if not path:
            raise BadInputError("there is no image", fix="send an image file")
        return service.analyse_image(path, **limits).to_json()

    def gestures_video(
        video: FileData, frames_per_second: float = 8.0, max_seconds: float = 600.0
    ) -> dict:
        """Hands frame by frame in a video: {"frames": [{time, hands}], "transcript", ...}."""
        path = upload_path(video, "video")
        if not path:
            raise BadInputError("there is no video", fix="send a video file")
        options = VideoOptions(
            fps=float(frames_per_second or 8), max_seconds=float(max_seconds or 600)
        )
        *_, last = service.analyse_video(path, options)
        return last.result.to_json()

    def gesture_teach(
        name: str, example_images: list[FileData], replace_existing: bool = False
    ) -> dict:
        """Teach gesture ``name`` from 5-20 example images: the taught gestures with their
        training accuracy, and the examples not used (with the reason)."""
        paths = [upload_path(f, "each example image") for f in example_images or []]
        _, skipped = service.teach(name, [p for p in paths if p], bool(replace_existing))
        return {"gestures": taught_list(service), "skipped": skipped}

    def gesture_delete(name: str) -> dict:
        """Forget a taught gesture; returns the gestures left."""
        if not (name or "").strip():
            raise BadInputError("no taught gesture named", fix="pass the gesture's name")
        service.forget(name.strip())
        return {"deleted": name.strip(), "gestures": taught_list(service)}

    def gesture_list() -> list[dict]:
        """Every taught gesture: name, examples, train_accuracy (or, when the set on the
        server cannot be read, one {"error", "fix"} entry)."""
        return taught_list(service)

    def gesture_export(request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """The taught set as a JSON file (``/gesture_teach``'s counterpart for sharing)."""
        folder = folders.folder(request.session_hash if request else None)
        out = folder / f"gestures-{time.time_ns()}.json"
        out.write_text(service.custom.export_json(), encoding="utf-8")
        return {"file": FileData(path=str(out)).model_dump(), "gestures": taught_list(service)}

    def gesture_speak(text: str, request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """A transcript read aloud: {"audio": WAV file, "seconds": duration}."""
        from mmdemo.flows.audio import wav_bytes

        rate, samples = service.speak(text or "")
        folder = folders.folder(request.session_hash if request else None)
        out = folder / f"spoken-{time.time_ns()}.wav"
        out.write_bytes(wav_bytes(samples, rate))
        return {
            "audio": FileData(path=str(out)).model_dump(),
            "seconds": round(len(samples) / rate, 3),
        }

    for fn in (gestures, gestures_video, gesture_teach):
        gr.api(ctx.heavy(guarded(fn)), api_name=fn.__name__, **heavy)
    # forgetting retrains the taught classifier; speaking runs the TTS model
    for fn in (gesture_delete, gesture_speak):
        gr.api(ctx.heavy(guarded(fn)), api_name=fn.__name__)
    gr.api(
        ctx.light(guarded(gesture_export), "writes the taught set's landmarks to a JSON file"),
        api_name="gesture_export",
    )
    gr.api(guarded(gesture_list), api_name="gesture_list", queue=False)
