"""``adapters``: list, add (validated against the profile's VLM), delete, merge, export a merged
model, rebuild the demos. Merges and exports run the same flow (``flows/adapter_ops.py``) as the
chat tab's adapter panel and the ``/adapters_merge`` and ``/adapters_export_merged`` endpoints."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from mmdemo.errors import BadInputError
from mmdemo.models.merge import COMBINATIONS


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
    merge = asub.add_parser(
        "merge", help="merge LoRA adapters into a new one (PEFT add_weighted_adapter)"
    )
    merge.add_argument("adapters", nargs="+", metavar="NAME", help="two or more LoRA adapters")
    merge.add_argument("--method", choices=COMBINATIONS, default="linear", help="default: linear")
    merge.add_argument(
        "--weights",
        nargs="+",
        type=float,
        metavar="W",
        help="one weight per adapter, in order (default: 1 each)",
    )
    merge.add_argument(
        "--density", type=float, default=0.5, help="ties, dare_ties: share of values kept (0.5)"
    )
    merge.add_argument("--name", default="", help="the new adapter's name (default: merge-A-B)")
    merge.add_argument("--json", action="store_true", help="print the new adapter's entry")
    merge.set_defaults(func=cmd_merge)
    export = asub.add_parser(
        "export-merged",
        help="base + adapter as one transformers model, zipped (PEFT merge_and_unload)",
    )
    export.add_argument("name", help="the adapter to fold into the base")
    export.add_argument("--out", type=Path, required=True, help="the zip file to write")
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    export.set_defaults(func=cmd_export_merged)
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


def _ops(args: argparse.Namespace):
    from mmdemo.flows.adapter_ops import AdapterOps

    return AdapterOps(_chat(args))


def cmd_merge(args: argparse.Namespace) -> int:
    weights = args.weights if args.weights is not None else [1.0] * len(args.adapters)
    ops = _ops(args)
    info = ops.merge(args.adapters, weights, args.method, args.density, args.name.strip())
    if args.json:
        entry = next(a for a in ops.chat.adapters_summary() if a["name"] == info.name)
        print(json.dumps(entry, indent=2))
    else:
        print(
            f"merged {', '.join(args.adapters)} -> {info.name} ({info.description}) -> {info.path}"
        )
    return 0


def cmd_export_merged(args: argparse.Namespace) -> int:
    out = args.out.expanduser().absolute()
    if out.suffix.lower() != ".zip":
        raise BadInputError(
            f"--out {str(args.out)!r} is not a .zip file", fix="e.g. --out model.zip"
        )
    if out.exists() and not args.force:
        raise BadInputError(f"{out} already exists", fix="pass --force to replace it")
    if not out.parent.is_dir():
        raise BadInputError(f"folder {out.parent} does not exist", fix="create it first")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        result = _ops(args).export_merged(args.name, Path(tmp))
        result.archive.replace(out)
    print(
        f"exported {result.adapter} merged into {result.base_model} -> {out} "
        f"({result.nbytes / 2**20:.1f} MB, {result.seconds:.1f} s)"
    )
    return 0


def cmd_build_demo(args: argparse.Namespace) -> int:
    from mmdemo.finetune.demo_adapters import build_demo_adapters
    from mmdemo.models.adapters import BUILTIN_DIR

    results = build_demo_adapters(args.out or BUILTIN_DIR, steps=args.steps)
    for name, metrics in results.items():
        print(f"{name}: {metrics}")
    return 0
