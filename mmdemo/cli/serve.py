"""``serve``: start the web app."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start the web app (same as `python app.py`)")
    p.add_argument("--host", help="interface to bind (MMDEMO_HOST)")
    p.add_argument("--port", type=int, help="port (MMDEMO_PORT)")
    p.add_argument("--share", action="store_true", default=None, help="public Gradio link")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmdemo.cli import settings_from
    from mmdemo.ui.app import launch

    settings = settings_from(args).replace(
        **{
            k: v
            for k, v in (("host", args.host), ("port", args.port), ("share", args.share))
            if v is not None
        }
    )
    launch(settings)
    return 0
