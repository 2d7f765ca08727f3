"""Gestures: hands in an image, a video or a live stream -> gestures, a transcript.

``GestureService`` is shared by all users (the landmarker comes from the ModelManager, the
classifiers are small numpy MLPs); ``LiveSession`` is one user's stream state (smoothing,
moving gestures, transcript), also used to run a video file frame by frame.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.errors import BadInputError, require_local
from mmdemo.flows.gestures.classifier import GestureModel
from mmdemo.flows.gestures.custom import OTHER, CustomGestures
from mmdemo.flows.gestures.draw import draw_hands
from mmdemo.flows.gestures.features import features, normalise
from mmdemo.flows.gestures.motion import MotionConfig, MotionEvent, MotionTracker
from mmdemo.flows.gestures.spelling import SpellingConfig, Transcriber
from mmdemo.flows.gestures.train import BUILTIN_WEIGHTS
from mmdemo.flows.gestures.types import (
    HandResult,
    ImageResult,
    LiveUpdate,
    VideoOptions,
    VideoProgress,
    VideoResult,
)
from mmdemo.flows.gestures.vocabulary import NONE
from mmdemo.flows.limits import require_shared_additions
from mmdemo.flows.video.frames import FrameStats, read_frames
from mmdemo.flows.video.probe import FIX as VIDEO_FIX
from mmdemo.flows.video.probe import probe

MAX_FRAME_SIDE = 640  # video frames are scaled down to this longer side (hands need no more)
SMALL_HAND_PX = 40  # hands narrower than this are found less often and less precisely


class GestureService:
    """Hand landmarks (shared backend) + built-in and taught classifiers."""

    def __init__(
        self,
        manager: Any,
        home: Path,
        threshold: float = 0.5,
        hosted: bool = False,
        max_video_s: float | None = None,
        allow_training: bool = True,
    ) -> None:
        self.manager = manager
        self.hosted = hosted  # visitors of a hosted server share the taught set
        self.max_video_s = max_video_s  # the most video one request may analyse (None: any)
        self.allow_training = allow_training  # hosted: may visitors teach new gestures
        self.threshold = threshold  # below this probability a hand's gesture is "none"
        self.custom_path = Path(home) / "gestures" / "custom.json"
        self._lock = threading.Lock()
        self._builtin: GestureModel | None = None
        self._custom: CustomGestures | None = None

    @property
    def builtin(self) -> GestureModel:
        with self._lock:
            if self._builtin is None:
                self._builtin = GestureModel.load(BUILTIN_WEIGHTS)
            return self._builtin

    @property
    def custom(self) -> CustomGestures:
        """The taught set; one that could not be read is read again once its file changes."""
        with self._lock:
            if self._custom is None or self._custom.stale:
                self._custom = CustomGestures(self.custom_path)
            return self._custom

    def classify(self, hands: list[Any], width: int, height: int) -> list[HandResult]:
        """Gesture and confidence for each landmarker ``Hand``."""
        if not hands:
            return []
        lm = np.stack([h.landmarks for h in hands])
        left = np.array([h.handedness == "Left" for h in hands])
        feats = features(normalise(lm, width, height, left))
        probs = self.builtin.probabilities(feats)
        classes = self.builtin.classes
        taught = self.custom.model
        taught_probs = taught.probabilities(feats) if taught is not None else None
        out = []
        for i, hand in enumerate(hands):
            k = int(probs[i].argmax())
            name, conf = classes[k], float(probs[i, k])
            if taught_probs is not None:
                j = int(taught_probs[i].argmax())
                if taught.classes[j] != OTHER and taught_probs[i, j] >= self.threshold:
                    name, conf = taught.classes[j], float(taught_probs[i, j])
            if conf < self.threshold:
                name = NONE
            pts = hand.landmarks[:, :2] * np.array([width, height])
            size = float(np.ptp(pts, axis=0).max())
            out.append(HandResult(hand.handedness, name, conf, np.asarray(hand.landmarks), size))
        return out

    def detect(self, rgb: np.ndarray, zoom: bool = True) -> tuple[list[HandResult], list[str]]:
        """Hands in an RGB array; with ``zoom``, small hands are looked for in four tiles."""
        tracker = self.manager.get("hands")
        h, w = rgb.shape[:2]
        found = tracker.detect(rgb)
        notes: list[str] = []
        if not found and zoom and max(w, h) >= 480:
            found = self._tiles(tracker, rgb)
            if found:
                notes.append("the hand is small in the picture: it was found by zooming in")
        hands = self.classify(found, w, h)
        hands.sort(key=lambda r: -r.size_px)
        small = [r for r in hands if r.size_px < SMALL_HAND_PX]
        if small:
            notes.append(
                f"{len(small)} hand(s) only {small[0].size_px:.0f} px across: gestures of small "
                "hands are less reliable; move closer or crop the picture"
            )
        if len(hands) > 1:
            notes.append(
                f"{len(hands)} hands: each is classified; the transcript follows the largest"
            )
        return hands, notes

    @staticmethod
    def _tiles(tracker: Any, rgb: np.ndarray) -> list[Any]:
        from mmdemo.models.backends.hands import Hand

        h, w = rgb.shape[:2]
        th, tw = int(h * 0.6), int(w * 0.6)
        found: list[Any] = []
        for y0 in (0, h - th):
            for x0 in (0, w - tw):
                for hand in tracker.detect(np.ascontiguousarray(rgb[y0 : y0 + th, x0 : x0 + tw])):
                    lm = hand.landmarks.copy()
                    lm[:, 0] = (lm[:, 0] * tw + x0) / w
                    lm[:, 1] = (lm[:, 1] * th + y0) / h
                    lm[:, 2] = lm[:, 2] * tw / w
                    centre = lm[:, :2].mean(0)
                    if all(np.abs(centre - f.landmarks[:, :2].mean(0)).max() > 0.05 for f in found):
                        found.append(Hand(lm, hand.handedness, hand.score))
        return found

    def analyse_image(
        self, source: Any, max_side: int = 2048, max_bytes: int | None = None
    ) -> ImageResult:
        """Hands, gestures and a drawn skeleton for an image (path, PIL image or array)."""
        from mmdemo.images import load_image

        start = time.perf_counter()
        if source is None:
            raise BadInputError("there is no image", fix="upload a picture of a hand")
        image = load_image(source, max_side=max_side, max_bytes=max_bytes)
        rgb = np.asarray(image)
        hands, notes = self.detect(rgb)
        if not hands:
            notes.append(
                "no hand was found: show one hand, palm or back towards the camera, well lit, "
                "filling at least a tenth of the picture"
            )
        if self.custom.damage is not None:
            notes.append(str(self.custom.damage))
        annotated = draw_hands(image, hands)
        return ImageResult(
            tuple(hands),
            annotated,
            image.width,
            image.height,
            tuple(notes),
            time.perf_counter() - start,
        )

    def live(self, spelling: SpellingConfig | None = None) -> LiveSession:
        return LiveSession(self, Transcriber(spelling or SpellingConfig(), self.custom.names))

    def analyse_video(
        self,
        path: str | Path,
        options: VideoOptions | None = None,
        stop: threading.Event | None = None,
        every_s: float = 1.0,
    ) -> Iterator[VideoProgress]:
        """Analyse a video file as a stream; yields progress about every ``every_s`` seconds
        of wall time and a final ``VideoProgress`` with the ``result``."""
        options = options or VideoOptions()
        longest = self.max_video_s
        if longest is not None and options.max_seconds > longest:  # before any decoding
            raise BadInputError(
                f"analysing {options.max_seconds / 60:g} minutes of video is over this "
                f"server's limit of {longest / 60:g} minutes",
                fix=f"ask for at most {longest / 60:g} minutes (max_seconds={longest:g}); the "
                "operator sets the limit with MMDEMO_MAX_VIDEO_MINUTES",
            )
        info = probe(path)
        if not info.has_video:
            raise BadInputError(f"{info.name} has no video track", fix=VIDEO_FIX)
        total = min(info.duration or options.max_seconds, options.max_seconds)
        session = self.live(options.spelling)
        frames: list[tuple[float, tuple[HandResult, ...]]] = []
        notes: list[str] = []
        last_report, last_t, cancelled, annotated = time.perf_counter(), 0.0, False, None
        stats = FrameStats()
        every = 1.0 / options.fps
        reader = read_frames(path, info, every, MAX_FRAME_SIDE, None, stats, options.max_seconds)
        with contextlib.closing(reader):  # a cancelled read closes the file at once
            for frame in reader:
                if stop is not None and stop.is_set():
                    cancelled = True
                    notes.append(f"cancelled after {last_t:.1f} s of video")
                    break
                update = session.process(frame.pixels, frame.time, draw=False)
                frames.append((frame.time, update.hands))
                last_t = frame.time
                if time.perf_counter() - last_report >= every_s:
                    last_report = time.perf_counter()
                    annotated = draw_hands(frame.pixels, update.hands)
                    yield VideoProgress(last_t, total, session.transcript.text, annotated)
        if stats.sampled == 0:
            cause = (
                f"could not be decoded ({stats.damaged})"
                if stats.damaged
                else "holds no video frames"
            )
            raise BadInputError(f"{info.name} {cause}", fix="re-export the video; " + VIDEO_FIX)
        if stats.damaged:
            notes.append(
                f"the video is damaged or truncated (decoding stopped at {last_t:.1f} s: "
                f"{stats.damaged}); the rest was not analysed: re-export or upload the complete file"
            )
        if info.duration and info.duration > options.max_seconds:
            notes.append(
                f"the video is {info.duration / 60:.0f} min long; only the first "
                f"{options.max_seconds / 60:.0f} min were analysed (raise max_seconds for more)"
            )
        elif info.duration and not cancelled and last_t < info.duration - 2.0:
            notes.append(
                f"frames stop at {last_t:.1f} s of a {info.duration:.1f} s video: the file is "
                "probably truncated; upload the complete file"
            )
        if not any(hands for _, hands in frames):
            notes.append("no hand was found in any analysed frame")
        result = VideoResult(
            tuple(frames),
            session.transcript.text,
            tuple(session.motions),
            last_t,
            info.duration,
            tuple(dict.fromkeys(notes)),
            cancelled,
        )
        yield VideoProgress(last_t, total, result.transcript, annotated, result)

    def forget(self, name: str) -> list[Any]:
        """Forget a taught gesture (refused on a hosted server, whose visitors share the set);
        returns the gestures left."""
        require_local(self, "deleting a shared taught gesture")
        return self.custom.delete(name)

    def import_set(self, path: str | Path, max_bytes: int = 20 * 2**20) -> list[Any]:
        """Merge an exported set (a JSON file) into the taught set, replacing gestures of the
        same name; refused on a hosted server, whose visitors share the set."""
        require_local(self, "importing gestures into the shared taught set")
        with open(path, "rb") as f:
            text = f.read(max_bytes).decode("utf-8", errors="replace")
        return self.custom.import_json(text, Path(path).name)

    def teach(
        self, name: str, images: list[Any], replace: bool = False, max_side: int = 1024
    ) -> tuple[list[Any], list[str]]:
        """Teach gesture ``name`` from example images; returns (taught gestures with their
        training accuracy, notes naming examples that were not used).

        Hosted: a taught gesture is never replaced (names compare as the set does: case and
        spacing ignored), and a new one only where training is allowed."""
        from mmdemo.flows.gestures.custom import MAX_EXAMPLES, MIN_EXAMPLES, check_name
        from mmdemo.images import load_image

        if self.hosted:
            wanted = " ".join(str(name or "").split()).lower()
            if wanted in {n.lower() for n in self.custom.names}:
                require_local(self, "replacing a shared taught gesture")
            require_shared_additions(self, "teaching a new gesture")
            replace = False  # one taught meanwhile under this name is refused, not replaced
        check_name(name, self.custom.names, replace)  # before any image is read
        images = [i for i in images or [] if i is not None]
        if len(images) < MIN_EXAMPLES:
            raise BadInputError(
                f"{len(images)} example(s) given; a gesture needs {MIN_EXAMPLES}-{MAX_EXAMPLES}",
                fix=f"record or upload at least {MIN_EXAMPLES} pictures of the gesture",
            )
        if len(images) > MAX_EXAMPLES:
            raise BadInputError(
                f"{len(images)} examples given; at most {MAX_EXAMPLES} are used",
                fix=f"keep the {MAX_EXAMPLES} clearest",
            )
        hands, skipped = [], []
        for i, source in enumerate(images, 1):
            label = Path(str(source)).name if isinstance(source, (str, Path)) else f"example {i}"
            try:
                image = load_image(source, max_side=max_side)
            except BadInputError as exc:
                skipped.append(f"{label}: {exc}")
                continue
            found, _ = self.detect(np.asarray(image))
            if not found:
                skipped.append(f"{label}: no hand found")
                continue
            main = found[0]
            hands.append(
                normalise(main.landmarks, image.width, image.height, main.handedness == "Left")
            )
        if len(hands) < MIN_EXAMPLES:
            raise BadInputError(
                f"only {len(hands)} of {len(images)} examples show a hand the tracker finds "
                f"({'; '.join(skipped)}); {MIN_EXAMPLES} are needed",
                fix="replace those pictures: one hand, large in the frame, well lit",
            )
        gestures = self.custom.teach(name, hands, replace)
        probs = self.builtin.probabilities(features(np.stack(hands)))
        names = [self.builtin.classes[k] for k in probs.argmax(1)]
        common = max(set(names), key=names.count)
        if common != NONE and names.count(common) * 2 > len(names):
            skipped.append(
                f"note: {names.count(common)} of {len(names)} examples also look like the built-in "
                f"'{common.replace('_', ' ')}'; the taught gesture takes precedence for that shape"
            )
        return gestures, skipped

    def second_opinion(self, image: Any, hand: HandResult) -> list[tuple[str, float]]:
        """CLIP zero-shot over the built-in gesture names on a crop around ``hand``."""
        from mmdemo.flows.gestures.vocabulary import BUILTIN, STATIC_GESTURES
        from mmdemo.retrieval.zeroshot import classify

        w, h = image.size
        pts = hand.landmarks[:, :2] * np.array([w, h])
        lo, hi = pts.min(0), pts.max(0)
        pad = 0.3 * (hi - lo).max() + 8
        box = (*np.maximum(lo - pad, 0).astype(int), *np.minimum(hi + pad, [w, h]).astype(int))
        labels = [c.label for c in BUILTIN if c.name in STATIC_GESTURES]
        result = classify(
            self.manager.get("clip"),
            image.crop(tuple(int(v) for v in box)),
            labels,
            ["a photo of a hand showing {}.", "a hand making the {} gesture."],
        )
        return list(zip(result.labels, result.probabilities, strict=True))

    def speak(self, text: str) -> tuple[int, np.ndarray]:
        """The transcript read aloud by the TTS backend: (sample rate, float32 mono)."""
        from mmdemo.flows.sentences import speakable

        words = speakable(text.replace("(", " ").replace(")", " "))
        if not words:
            raise BadInputError("the transcript is empty", fix="spell or show some gestures first")
        speech = self.manager.get("tts").synthesize(words)
        return speech.sample_rate, np.asarray(speech.audio, dtype=np.float32)


@dataclass
class LiveSession:
    """One stream (webcam or video): smoothing, moving gestures and the transcript."""

    service: GestureService
    transcript: Transcriber
    tracker: MotionTracker = field(default_factory=lambda: MotionTracker(MotionConfig()))
    motions: list[MotionEvent] = field(default_factory=list)
    on_token: Callable[[str], None] | None = None

    def process(self, rgb: np.ndarray, time_s: float, draw: bool = True) -> LiveUpdate:
        """One frame (RGB array) at ``time_s`` seconds."""
        h, w = rgb.shape[:2]
        hands, notes = self.service.detect(rgb, zoom=False)
        main = hands[0] if hands else None
        token = self.transcript.feed(main.gesture if main else None)
        motion = self.tracker.feed(time_s, main.landmarks if main else None, w, h)
        if motion is not None:
            self.motions.append(motion)
            token = self.transcript.add(motion.gesture) or token
        annotated = draw_hands(rgb, hands) if draw else None
        return LiveUpdate(
            tuple(hands), self.transcript.text, token, motion, annotated, tuple(notes)
        )

    def clear(self) -> None:
        self.transcript.clear()
        self.tracker.reset()
        self.motions.clear()
