"""``serve``: start the web app (and the OpenAI-compatible ``/v1`` API on the same port)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start the web app (same as `python app.py`)")
    p.add_argument("--host", help="interface to bind (MMDEMO_HOST)")
    p.add_argument("--port", type=int, help="port (MMDEMO_PORT)")
    p.add_argument("--share", action="store_true", default=None, help="public Gradio link")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--hosted",
        dest="hosted",
        action="store_true",
        default=None,
        help="hosted mode: no server paths, no other model ids, rate limits (MMDEMO_HOSTED; "
        "on by default on a Space, with --share or bound to a non-loopback --host)",
    )
    mode.add_argument(
        "--local",
        dest="hosted",
        action="store_false",
        help="local mode even on a Space, with --share or bound to a public address",
    )
    p.add_argument("--remote-vlm-url", help="OpenAI-compatible server for the VLM")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmdemo.config import Settings
    from mmdemo.ui.app import launch

    changes = {
        "host": args.host,
        "port": args.port,
        "share": args.share,
        "hosted": args.hosted,
        "remote_vlm_url": args.remote_vlm_url,
    }
    settings = Settings.load(
        config_file=args.config, profile=args.profile, home=args.home, **changes
    )
    launch(settings)
    return 0
