"""``adapters``: list, add (validated against the profile's VLM), delete, rebuild the demos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapters", help="PEFT adapters for the VLM")
    asub = p.add_subparsers(dest="adapters_command", metavar="ACTION", required=True)
    ls = asub.add_parser("list", help="adapters with their metadata")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    add = asub.add_parser("add", help="add an adapter folder or zip (checked against the VLM)")
    add.add_argument("path", type=Path)
    add.add_argument("--name", help="name to register it under (default: folder/zip name)")
    add.set_defaults(func=cmd_add)
    rm = asub.add_parser("delete", help="delete an uploaded adapter")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_delete)
    demo = asub.add_parser(
        "build-demo", help="retrain the demo adapters in assets/adapters (tiny VLM)"
    )
    demo.add_argument("--steps", type=int, default=300)
    demo.add_argument("--out", type=Path, help="default: assets/adapters")
    demo.set_defaults(func=cmd_build_demo)


def _chat(args: argparse.Namespace):
    from mmdemo.cli import settings_from
    from mmdemo.flows.chat import ChatService
    from mmdemo.models.adapters import AdapterStore
    from mmdemo.models.manager import ModelManager

    settings = settings_from(args)
    return ChatService(ModelManager(settings), AdapterStore(settings))


def cmd_list(args: argparse.Namespace) -> int:
    rows = _chat(args).adapters_summary()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for a in rows:
        score = ", ".join(f"{k} {v}" for k, v in a["metrics"].items()) or "-"
        where = "built in" if a["builtin"] else "uploaded"
        print(
            f"{a['name']:20} {a['method']:8} r={a['rank']!s:4} {where:9} base={a['base_model'] or '?'}"
            f"  dataset={a['dataset'] or '?'}  {score}"
        )
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    chat = _chat(args)
    info = chat.install_adapter(args.path, args.name)
    print(f"added {info.name} ({info.peft_type}, r={info.rank}) -> {info.path}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _chat(args).delete_adapter(args.name)
    print(f"deleted {args.name}")
    return 0


def cmd_build_demo(args: argparse.Namespace) -> int:
    from mmdemo.finetune.demo_adapters import build_demo_adapters
    from mmdemo.models.adapters import BUILTIN_DIR

    results = build_demo_adapters(args.out or BUILTIN_DIR, steps=args.steps)
    for name, metrics in results.items():
        print(f"{name}: {metrics}")
    return 0
