"""``gestures``: recognise hand gestures in images and videos, teach new ones, retrain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gestures", help="hand gestures: image, video, teach, train")
    gsub = p.add_subparsers(dest="gestures_command", metavar="ACTION", required=True)

    i = gsub.add_parser("image", help="gestures of the hands in images")
    i.add_argument("images", nargs="+")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--draw", help="folder to save the images with skeletons drawn")
    i.set_defaults(func=cmd_image)

    v = gsub.add_parser("video", help="gestures, moving gestures and transcript of a video")
    v.add_argument("video")
    v.add_argument("--fps", type=float, default=8.0, help="frames analysed per second")
    v.add_argument("--max-seconds", type=float, default=600.0, help="analyse at most this much")
    v.add_argument("--mode", choices=("spell", "gestures"), default="spell", help="transcript")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_video)

    t = gsub.add_parser("teach", help="teach a gesture from 5-20 example images")
    t.add_argument("name")
    t.add_argument("examples", nargs="+")
    t.add_argument("--replace", action="store_true", help="replace a taught gesture of that name")
    t.set_defaults(func=cmd_teach)

    ls = gsub.add_parser("list", help="taught gestures")
    ls.set_defaults(func=cmd_list)
    d = gsub.add_parser("delete", help="forget a taught gesture")
    d.add_argument("name")
    d.set_defaults(func=cmd_delete)
    e = gsub.add_parser("export", help="write the taught set to a JSON file")
    e.add_argument("file")
    e.set_defaults(func=cmd_export)
    m = gsub.add_parser("import", help="add the gestures of an exported set")
    m.add_argument("file")
    m.set_defaults(func=cmd_import)

    tr = gsub.add_parser(
        "train", help="retrain the built-in classifier (synthetic + emoji landmarks, offline)"
    )
    tr.add_argument("--per-class", type=int, default=1500, help="synthetic hands per class")
    tr.add_argument("--epochs", type=int, default=20)
    tr.add_argument("--seed", type=int, default=0)
    source = tr.add_mutually_exclusive_group()
    source.add_argument(
        "--extract",
        action="store_true",
        help="re-extract the emoji landmarks from the npm emoji packages (about 20 min) and "
        "rewrite assets/models/gestures-emoji-landmarks.npz first",
    )
    source.add_argument(
        "--synthetic-only", action="store_true", help="train on the kinematic hand model alone"
    )
    tr.add_argument("--out", help="weights file (default: assets/models/gestures.safetensors)")
    tr.set_defaults(func=cmd_train)


def service_from(args: argparse.Namespace) -> Any:
    from mmdemo.cli import settings_from
    from mmdemo.flows.gestures.service import GestureService
    from mmdemo.models.manager import ModelManager

    settings = settings_from(args)
    return GestureService(ModelManager(settings), settings.home)


def cmd_image(args: argparse.Namespace) -> int:
    service = service_from(args)
    results = {}
    for path in args.images:
        result = service.analyse_image(path)
        results[path] = result.to_json()
        if args.draw:
            out = Path(args.draw)
            out.mkdir(parents=True, exist_ok=True)
            result.annotated.save(out / f"{Path(path).stem}-hands.png")
        if not args.json:
            hands = ", ".join(
                f"{h.handedness} hand: {h.label} ({h.confidence:.0%})" for h in result.hands
            )
            print(f"{path}: {hands or 'no hand'}")
            for note in result.notes:
                print(f"  note: {note}")
    if args.json:
        print(json.dumps(results))
    return 0


def cmd_video(args: argparse.Namespace) -> int:
    from mmdemo.flows.gestures.service import VideoOptions
    from mmdemo.flows.gestures.spelling import SpellingConfig

    service = service_from(args)
    options = VideoOptions(args.fps, args.max_seconds, SpellingConfig(mode=args.mode))
    last = None
    for update in service.analyse_video(args.video, options):
        print(f"\r{update.done_s:7.1f} / {update.total_s:.1f} s", end="", file=sys.stderr)
        last = update
    print(file=sys.stderr)
    result = last.result
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    found = sum(1 for _, hands in result.frames if hands)
    print(f"{len(result.frames)} frames, a hand in {found}")
    for m in result.motions:
        print(f"  {m.end:6.1f} s  {m.gesture.replace('_', ' ')} ({m.confidence:.0%})")
    for note in result.notes:
        print(f"note: {note}")
    print(f"transcript: {result.transcript}")
    return 0


def _show(gestures: list[Any]) -> None:
    for g in gestures:
        print(f"{g.name}: {g.examples} examples, training accuracy {g.train_accuracy:.0%}")
    if not gestures:
        print("no taught gestures")


def cmd_teach(args: argparse.Namespace) -> int:
    gestures, skipped = service_from(args).teach(args.name, args.examples, args.replace)
    for s in skipped:
        print(f"not used: {s}")
    _show(gestures)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    custom = service_from(args).custom
    if custom.damage is not None:  # the set cannot be read: say so, not "no taught gestures"
        raise custom.damage
    _show(custom.gestures())
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _show(service_from(args).custom.delete(args.name))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    Path(args.file).write_text(service_from(args).custom.export_json(), encoding="utf-8")
    print(f"written to {args.file}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from mmdemo.errors import BadInputError

    path = Path(args.file)
    if not path.is_file():
        raise BadInputError(f"{path}: file not found", fix="give the path of an exported set")
    _show(service_from(args).custom.import_json(path.read_text(errors="replace"), path.name))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mmdemo.flows.gestures.train import (
        BUILTIN_WEIGHTS,
        DataConfig,
        emoji_landmarks,
        train_builtin,
    )

    out = Path(args.out) if args.out else BUILTIN_WEIGHTS
    emoji = None if args.synthetic_only else emoji_landmarks(extract=args.extract)
    config = DataConfig(per_class=args.per_class, seed=args.seed)
    train_builtin(out, config, args.epochs, emoji)
    return 0
