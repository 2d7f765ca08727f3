"""Re-make assets/models/hand_landmarker.task from the mediapipe 0.10.21 wheel on PyPI.

The app never runs this: the bundle is shipped. It documents (and repeats) where the two
TFLite files come from. Usage: ``python scripts/pack_hand_landmarker.py [WHEEL]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "mediapipe==0.10.21"
MEMBERS = {
    "hand_detector.tflite": "mediapipe/modules/palm_detection/palm_detection_full.tflite",
    "hand_landmarks_detector.tflite": "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
}
TARGET = Path(__file__).resolve().parents[1] / "assets" / "models" / "hand_landmarker.task"


def download(folder: str) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.11", "--implementation", "cp",
        "--platform", "manylinux_2_28_x86_64", WHEEL, "-d", folder, "--quiet",
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return next(Path(folder).glob("mediapipe-*.whl"))


def pack(wheel: Path, target: Path = TARGET) -> Path:
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as task:
        for name, member in MEMBERS.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 31, 0, 0, 0))
            task.writestr(info, src.read(member), compress_type=zipfile.ZIP_STORED)
    partial.replace(target)
    return target


def main() -> None:
    if len(sys.argv) > 1:
        print(pack(Path(sys.argv[1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(pack(download(tmp)))


if __name__ == "__main__":
    main()
