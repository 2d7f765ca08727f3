"""``video``: summarise a video into JSON, Markdown, SRT and VTT files; ask about it; search its
key frames. The tab's own code (``VideoService``), with a progress bar; Ctrl-C cancels and
still writes what finished."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="video summaries: chapters, key frames, transcript, summary")
    vsub = p.add_subparsers(dest="video_command", metavar="ACTION", required=True)

    s = vsub.add_parser("summarize", help="summarise a video into --out (JSON, Markdown, SRT, VTT)")
    s.add_argument("file", help="a video (or audio) file")
    s.add_argument("--out", required=True, help="folder for the results")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_summarize)

    a = vsub.add_parser("ask", help="ask a question about a video (file or video id)")
    a.add_argument("video", help="a video file, or the video_id of one summarised before")
    a.add_argument("question")
    a.add_argument("--json", action="store_true", help="machine-readable output")
    a.set_defaults(func=cmd_ask)

    f = vsub.add_parser("search", help="key frames of a video ranked by a text (CLIP)")
    f.add_argument("video", help="a video file, or the video_id of one summarised before")
    f.add_argument("text")
    f.add_argument("-k", type=int, default=5, help="results")
    f.set_defaults(func=cmd_search)


def service_from(args: argparse.Namespace) -> Any:
    from mmdemo.cli import settings_from
    from mmdemo.flows.video.service import VideoService
    from mmdemo.models.manager import ModelManager

    settings = settings_from(args)
    return VideoService(settings, ModelManager(settings))


def run_with_progress(service: Any, path: str, quiet: bool) -> Any:
    """Summarise in a worker thread; the main thread shows progress and turns Ctrl-C into a
    cancel (the worker then returns what finished)."""
    stop = threading.Event()
    updates: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = service.summarize(path, stop, on_progress=updates.put)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc
        finally:
            updates.put(None)

    thread = threading.Thread(target=work, name="mmdemo-video", daemon=True)
    thread.start()
    bar = None
    while True:
        try:
            message = updates.get()
        except KeyboardInterrupt:
            stop.set()
            print("\ncancelling… (finished steps are kept)", file=sys.stderr)
            continue
        if message is None:
            break
        if quiet:
            continue
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=100, unit="%", file=sys.stderr, dynamic_ncols=True)
        bar.n = round(message.overall * 100)
        bar.set_description(f"{message.step}/5 {message.label}", refresh=False)
        bar.refresh()
    thread.join()
    if bar is not None:
        bar.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def cmd_summarize(args: argparse.Namespace) -> int:
    from mmdemo.flows.video.export import write_outputs
    from mmdemo.flows.video.types import Cancelled, clock

    service = service_from(args)
    try:
        result = run_with_progress(service, args.file, args.quiet)
    except Cancelled:
        print("cancelled before anything finished", file=sys.stderr)
        return 130
    files = write_outputs(result, args.out)
    print(result.summary)
    for chapter in result.chapters:
        print(f"  {clock(chapter.start)}  {chapter.title}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"video_id {result.video_id}")
    for kind, path in files.items():
        print(f"wrote {kind}: {path}")
    if not result.complete:
        return 130 if any("cancelled" in n for n in result.notes) else 1
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from mmdemo.flows.video.types import clock

    service = service_from(args)
    answer = service.ask(args.video, args.question)
    if args.json:
        print(json.dumps({"answer": answer.text, "citations": list(answer.citations)}, indent=2))
        return 0
    print(answer.text)
    print("cites: " + ", ".join(clock(t) for t in answer.citations))
    for note in answer.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from mmdemo.flows.video.types import clock

    service = service_from(args)
    for hit in service.search(args.video, args.text, k=args.k):
        print(f"{hit.rank:3}  {hit.score:.4f}  {clock(hit.frame.time)}  {hit.frame.caption}")
    return 0
