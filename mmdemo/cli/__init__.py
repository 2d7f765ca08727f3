"""Command-line interface. Each sub-command lives in its own module with ``register(sub)``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from mmdemo.config import Settings
from mmdemo.errors import MMDemoError
from mmdemo.logs import quiet_library_logs
from mmdemo.profiles import PROFILE_NAMES

# Modules that add sub-commands; later features append theirs here.
COMMANDS = (
    "mmdemo.cli.serve",
    "mmdemo.cli.models",
    "mmdemo.cli.adapters",
    "mmdemo.cli.index",
    "mmdemo.cli.train",
    "mmdemo.cli.video",
    "mmdemo.cli.bench",
    "mmdemo.cli.gestures",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmdemo",
        description="mmdemo: multimodal demo studio (web app, models, adapters, indexes, benchmarks)",
    )
    parser.add_argument("--profile", choices=PROFILE_NAMES, help="model profile (MMDEMO_PROFILE)")
    parser.add_argument("--home", help="data folder (MMDEMO_HOME)")
    parser.add_argument("--config", help="TOML settings file (MMDEMO_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.load(config_file=args.config, profile=args.profile, home=args.home)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    quiet_library_logs()
    try:
        code = args.func(args) or 0
    except MMDemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    if argv is None:
        sys.exit(code)
    return code
