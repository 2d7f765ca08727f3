"""Hand-landmark backend: MediaPipe Tasks ``HandLandmarker``.

mediapipe >= 1.2 ships no model files; the 0.10.21 wheel on PyPI carries the palm-detection and
hand-landmark TFLite models (Apache-2.0). ``embedded:hand-landmarker`` takes those two files
from that wheel once and packs them into the ``.task`` bundle the Tasks API reads (an
*uncompressed* zip). A path to an existing ``.task`` file works too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.models.hub import unavailable
from mmdemo.models.manager import LoadContext, LoadedModel

WHEEL = "mediapipe==0.10.21"
MEMBERS = {
    "hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}


@dataclass(frozen=True)
class Hand:
    landmarks: Any  # (21, 3) float32: x, y in [0, 1] of the image, z relative depth
    handedness: str  # "Left" / "Right" as MediaPipe reports it
    score: float


class HandTracker:
    engine = "mediapipe"

    def __init__(self, task_path: Path, max_hands: int = 2):
        os.environ.setdefault("GLOG_minloglevel", "2")  # quiet MediaPipe's C++ INFO logs
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(task_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_hands=max_hands,
        )
        self._landmarker = vision.HandLandmarker.create_from_options(options)
        self.task_path = task_path
        self._closed = False
        # MediaPipe's __del__ fails at interpreter exit once its dispatcher's thread pool has
        # shut down; close before that (threading's exit hooks run newest first).
        threading._register_atexit(self.close)

    def detect(self, rgb: Any) -> list[Hand]:
        """Hands in an RGB uint8 image (H, W, 3)."""
        import mediapipe as mp
        import numpy as np

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._landmarker.detect(image)
        hands = []
        for marks, handed in zip(result.hand_landmarks, result.handedness, strict=False):
            pts = np.array([[p.x, p.y, p.z] for p in marks], dtype=np.float32)
            hands.append(Hand(pts, handed[0].category_name, float(handed[0].score)))
        return hands

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._landmarker.close()


def build_task(target: Path, settings: Settings) -> Path:
    """Fetch the mediapipe 0.10.21 wheel from PyPI and pack its hand models into ``target``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            WHEEL,
            "-d",
            tmp,
            "--quiet",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("mediapipe-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise unavailable(
                "hands",
                "embedded:hand-landmarker",
                settings,
                f"could not fetch {WHEEL} from PyPI: {proc.stderr.strip()[-300:]}",
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with (
            zipfile.ZipFile(wheels[0]) as wheel,
            zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as task,
        ):
            for name, member in MEMBERS.items():
                task.writestr(name, wheel.read(member))
        os.replace(partial, target)
    return target


def load(ctx: LoadContext) -> LoadedModel:
    mid = ctx.model_id
    if mid == "embedded:hand-landmarker":
        task = ctx.settings.models_dir / "embedded" / "hand_landmarker.task"
        if not task.is_file():
            build_task(task, ctx.settings)
    else:
        task = Path(mid).expanduser()
        if not task.is_file():
            raise unavailable(ctx.backend, mid, ctx.settings, f"no .task file at {task}")
    tracker = HandTracker(task)
    return LoadedModel(
        handle=tracker,
        device="cpu",
        dtype="float32",
        nbytes=task.stat().st_size,
        close=tracker.close,
        describe=lambda: {"engine": "mediapipe"},
    )
