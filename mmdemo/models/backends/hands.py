"""Hand-landmark backend: MediaPipe Tasks ``HandLandmarker``.

``embedded:hand-landmarker`` is the bundle shipped in this repository,
``assets/models/hand_landmarker.task``: MediaPipe's palm-detection and hand-landmark models
(Apache-2.0; taken from the ``mediapipe==0.10.21`` wheel, see ``assets/models/NOTICE.md``),
packed as the *uncompressed* zip the Tasks API reads. Nothing is downloaded. Any other model id
is a path to a ``.task`` file (e.g. ``MMDEMO_HANDS=/models/hand_landmarker.task``).
"""

from __future__ import annotations

import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import ModelUnavailableError
from mmdemo.models.manager import LoadContext, LoadedModel

EMBEDDED_TASK = Path(__file__).resolve().parents[3] / "assets" / "models" / "hand_landmarker.task"
TASK_MEMBERS = ("hand_detector.tflite", "hand_landmarks_detector.tflite")
MAX_HANDS = 4


@dataclass(frozen=True)
class Hand:
    landmarks: Any  # (21, 3) float32: x, y in [0, 1] of the image, z relative depth
    handedness: str  # "Left" / "Right" as MediaPipe reports it
    score: float


class HandTracker:
    engine = "mediapipe"

    def __init__(self, task_path: Path, max_hands: int = MAX_HANDS):
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
        self.max_hands = max_hands
        self._lock = threading.Lock()  # one graph, used by every user in turn
        self._closed = False
        # MediaPipe's __del__ fails at interpreter exit once its dispatcher's thread pool has
        # shut down; close before that (threading's exit hooks run newest first).
        threading._register_atexit(self.close)

    def detect(self, rgb: Any) -> list[Hand]:
        """Hands in an RGB uint8 image (H, W, 3)."""
        import mediapipe as mp
        import numpy as np

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        with self._lock:
            result = self._landmarker.detect(image)
        hands = []
        for marks, handed in zip(result.hand_landmarks, result.handedness, strict=False):
            pts = np.array([[p.x, p.y, p.z] for p in marks], dtype=np.float32)
            hands.append(Hand(pts, handed[0].category_name, float(handed[0].score)))
        return hands

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._landmarker.close()


def check_task(path: Path) -> str | None:
    """Why ``path`` is not a usable hand-landmarker bundle, or None if it is."""
    if not path.is_file():
        return f"no .task file at {path}"
    try:
        with zipfile.ZipFile(path) as bundle:
            infos = {i.filename: i for i in bundle.infolist()}
    except zipfile.BadZipFile:
        return f"{path} is not a .task bundle (not a zip file)"
    missing = [m for m in TASK_MEMBERS if m not in infos]
    if missing:
        return f"{path} lacks {', '.join(missing)}"
    if any(infos[m].compress_type != zipfile.ZIP_STORED for m in TASK_MEMBERS):
        return f"{path} is a compressed zip; MediaPipe reads only uncompressed ones (zip -0)"
    return None


def task_path(model_id: str) -> Path:
    return EMBEDDED_TASK if model_id == "embedded:hand-landmarker" else Path(model_id).expanduser()


def load(ctx: LoadContext) -> LoadedModel:
    task = task_path(ctx.model_id)
    problem = check_task(task)
    if problem is not None:
        raise ModelUnavailableError(
            f"the hands model '{ctx.model_id}' cannot be used: {problem}",
            backend=ctx.backend,
            model_id=ctx.model_id,
            fix=(
                "restore assets/models/hand_landmarker.task (`git checkout -- assets/models`), "
                "or set MMDEMO_HANDS to the path of an uncompressed hand_landmarker.task"
            ),
        )
    tracker = HandTracker(task)
    return LoadedModel(
        handle=tracker,
        device="cpu",
        dtype="float32",
        nbytes=task.stat().st_size,
        close=tracker.close,
        describe=lambda: {"engine": "mediapipe", "max_hands": tracker.max_hands},
    )
