"""CLIP on key frames (the manager's CLIP, the retrieval package's embedding code): vectors
that search the key frames by text, join borderline cuts CLIP sees as one scene, and label
frames in words when no VLM can caption them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from mmdemo.flows.video.config import VideoConfig
from mmdemo.flows.video.types import Shot, check
from mmdemo.retrieval import embed as emb

# Everyday scenes and things: CLIP's words for a frame when the VLM cannot caption it.
LABELS = (
    "a person talking",
    "a group of people",
    "a face close up",
    "a crowd",
    "a presentation slide",
    "text on a screen",
    "a chart or diagram",
    "a computer screen",
    "a whiteboard",
    "a classroom",
    "an office",
    "a kitchen",
    "food on a plate",
    "a cup of coffee",
    "a room indoors",
    "a city street",
    "a building",
    "a car",
    "a road",
    "a train",
    "an airplane",
    "a rocket",
    "outer space",
    "an astronaut",
    "the night sky",
    "a cat",
    "a dog",
    "a horse",
    "a bird",
    "a fish",
    "an animal",
    "a forest",
    "a field of grass",
    "mountains",
    "a beach",
    "the sea",
    "a river",
    "snow",
    "flowers",
    "a garden",
    "a sports game",
    "a stage with performers",
    "a musical instrument",
    "a map",
    "a document",
    "a book",
    "hands at work",
    "a tool or machine",
    "a laboratory",
    "a microscope image",
    "a cartoon",
    "a logo",
    "a plain coloured background",
    "a dark scene",
    "coins",
    "a camera",
)
TEMPLATE = "a video frame showing {}."


def embed_frames(
    bundle: Any, paths: Sequence[str], stop: threading.Event | None = None, batch: int = 16
) -> np.ndarray:
    """L2-normalised CLIP vectors of key-frame files, (n, dim) float32."""
    parts = []
    for i in range(0, len(paths), batch):
        check(stop)
        parts.append(emb.embed_images(bundle, list(paths[i : i + batch])))
    if not parts:
        return np.zeros((0, int(bundle.embed_dim)), np.float32)
    return np.concatenate(parts).astype(np.float32)


def refine(
    frames: list[Shot], vectors: np.ndarray, config: VideoConfig
) -> tuple[list[Shot], np.ndarray]:
    """Join neighbouring stretches whose colour cut was borderline (under twice the threshold)
    when CLIP sees the two key frames as the same scene; strong cuts and splits stay."""
    if len(frames) < 2:
        return list(frames), vectors
    out, vecs = [frames[0]], [vectors[0]]
    for shot, vec in zip(frames[1:], vectors[1:], strict=True):
        borderline = not shot.soft and shot.cut < 2 * config.cut_threshold
        if borderline and float(vec @ vecs[-1]) >= config.clip_merge_similarity:
            prev = out[-1]
            longer_new = shot.end - shot.start > prev.end - prev.start
            keep = shot if longer_new else prev
            out[-1] = replace(prev, end=shot.end, key_time=keep.key_time, key_file=keep.key_file)
            vecs[-1] = vec if longer_new else vecs[-1]
        else:
            out.append(shot)
            vecs.append(vec)
    return out, np.stack(vecs)


def label_vectors(bundle: Any) -> np.ndarray:
    return emb.embed_texts(bundle, [TEMPLATE.format(label) for label in LABELS])


def labels(vectors: np.ndarray, label_vecs: np.ndarray, top: int = 2) -> list[str]:
    """For each frame, its ``top`` closest labels in words (a caption stand-in)."""
    if len(vectors) == 0:
        return []
    scores = vectors @ label_vecs.T
    out = []
    for row in scores:
        best = np.argsort(-row, kind="stable")[:top]
        out.append("Looks like " + " or ".join(LABELS[i] for i in best) + " (CLIP)")
    return out


def rank(vectors: np.ndarray, text_vector: np.ndarray) -> list[tuple[int, float]]:
    """(position, cosine) of frames by similarity to a text embedding, best first."""
    scores = vectors @ text_vector
    order = np.argsort(-scores, kind="stable")
    return [(int(i), float(scores[i])) for i in order]
