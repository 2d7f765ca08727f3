"""``index``: build, grow, shrink, search and inspect CLIP image indexes (the tab's own code)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

MAX_SKIPPED_SHOWN = 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="CLIP image indexes: build, add, remove, search, info")
    isub = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    def embed_flags(q: argparse.ArgumentParser) -> None:
        q.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
        q.add_argument("--workers", type=int, default=0, help="decoding threads (0: one per core)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")

    b = isub.add_parser("build", help="a new index from folders (recursive) and files")
    b.add_argument("name")
    b.add_argument("sources", nargs="+", help="folders and/or image files")
    b.add_argument("--replace", action="store_true", help="start an existing index afresh")
    b.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    embed_flags(b)
    b.set_defaults(func=cmd_build)

    a = isub.add_parser("add", help="add new images; unchanged and duplicate files are skipped")
    a.add_argument("name")
    a.add_argument("sources", nargs="+", help="folders and/or image files")
    a.add_argument("--create", action="store_true", help="create the index if it is missing")
    embed_flags(a)
    a.set_defaults(func=cmd_add)

    r = isub.add_parser("remove", help="remove images by id or path")
    r.add_argument("name")
    r.add_argument("targets", nargs="*", help="image ids (numbers) or file paths")
    r.add_argument("--missing", action="store_true", help="also remove entries whose file is gone")
    r.set_defaults(func=cmd_remove)

    s = isub.add_parser("search", help="search by text, image, or both")
    s.add_argument("name")
    s.add_argument("--text", default="", help="text query")
    s.add_argument("--image", help="image query (a file)")
    s.add_argument("--like", type=int, help="search by an indexed image's id")
    s.add_argument("--weight", type=float, default=0.5, help="text weight when both are given")
    s.add_argument("-k", type=int, default=10, help="results")
    s.add_argument("--exact", action="store_true", help="exact scan even for large indexes")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_search)

    i = isub.add_parser("info", help="one index in detail, or all indexes")
    i.add_argument("name", nargs="?")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    d = isub.add_parser("delete", help="delete an index (its folder under MMDEMO_HOME/indexes)")
    d.add_argument("name")
    d.add_argument("--yes", action="store_true", help="really delete")
    d.set_defaults(func=cmd_delete)

    c = isub.add_parser("classify", help="zero-shot: an image against comma-separated labels")
    c.add_argument("image")
    c.add_argument("labels", help='e.g. "cat, dog, rocket"')
    c.add_argument("--template", action="append", help='prompt template, e.g. "a photo of a {}."')
    c.set_defaults(func=cmd_classify)


def service_from(args: argparse.Namespace) -> Any:
    from mmdemo.cli import settings_from
    from mmdemo.models.manager import ModelManager
    from mmdemo.retrieval import IndexService, RetrievalConfig
    from mmdemo.retrieval.embed import EmbedConfig

    settings = settings_from(args)
    embed = EmbedConfig(
        batch_size=getattr(args, "batch_size", 32), workers=getattr(args, "workers", 0)
    )
    return IndexService(settings, ModelManager(settings), RetrievalConfig(embed=embed))


class _Bar:
    """A tqdm bar driven by the flow's progress callback (nothing when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.bar = None
        self.quiet = quiet

    def __call__(self, p: Any) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.total, unit="img", file=sys.stderr, dynamic_ncols=True)
        self.bar.n = p.done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _print_report(report: Any) -> None:
    print(report.describe().replace("**", ""))
    for s in report.skipped[:MAX_SKIPPED_SHOWN]:
        print(f"  skipped {s.path}: {s.reason}")
    if len(report.skipped) > MAX_SKIPPED_SHOWN:
        print(f"  … and {len(report.skipped) - MAX_SKIPPED_SHOWN} more skipped")


def cmd_build(args: argparse.Namespace) -> int:
    service = service_from(args)
    bar = _Bar(args.quiet)
    try:
        report = service.build(
            args.name, args.sources, replace=args.replace, dtype=args.dtype, progress=bar
        )
    finally:
        bar.close()
    _print_report(report)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    service = service_from(args)
    bar = _Bar(args.quiet)
    try:
        report = service.add(args.name, args.sources, create=args.create, progress=bar)
    finally:
        bar.close()
    _print_report(report)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    service = service_from(args)
    ids = [int(t) for t in args.targets if t.isdigit()]
    paths = [t for t in args.targets if not t.isdigit()]
    if not ids and not paths and not args.missing:
        print("error: name images to remove (ids or paths), or pass --missing", file=sys.stderr)
        return 2
    report = service.remove(args.name, ids=ids, paths=paths, missing=args.missing)
    print(f"removed {report.removed} from {report.index}; {report.total} images now")
    for t in report.not_found:
        print(f"  not in the index: {t}")
    return 0 if not report.not_found else 1


def cmd_search(args: argparse.Namespace) -> int:
    from mmdemo.retrieval import Query

    service = service_from(args)
    query = Query(text=args.text, image=args.image, item_id=args.like, text_weight=args.weight)
    result = service.search(args.name, query, k=args.k, exact=args.exact)
    if args.json:
        rows = [
            {
                "rank": h.rank,
                "score": round(h.score, 6),
                "id": h.item.id,
                "name": h.item.name,
                "path": h.item.path,
            }
            for h in result.hits
        ]
        print(json.dumps({"query": result.query, "method": result.method, "hits": rows}, indent=2))
        return 0
    print(
        f"{result.query} in {result.index} ({result.searched} images, {result.method}, "
        f"{result.seconds * 1000:.1f} ms)"
    )
    for h in result.hits:
        print(f"{h.rank:3}  {h.score:.4f}  #{h.item.id:<6} {h.item.name:30} {h.item.path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    service = service_from(args)
    names = [args.name] if args.name else service.names()
    infos = [service.info(n) for n in names]
    if args.json:
        print(json.dumps([vars(i) for i in infos], indent=2))
        return 0
    if not infos:
        from mmdemo.config_checks import vector_db

        target = vector_db(service.settings.vector_db, service.settings.indexes_dir)
        where = service.settings.indexes_dir if target.kind == "faiss" else target.shown
        print(f"no indexes in {target.backend} ({where})")
    for info in infos:
        when = datetime.fromtimestamp(info.updated).isoformat(timespec="seconds")
        print(f"{info.name}: {info.describe().replace('`', '')}; updated {when}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    service = service_from(args)
    if not args.yes:
        count = service.info(args.name).count
        print(f"index {args.name} holds {count} images; pass --yes to delete it", file=sys.stderr)
        return 2
    service.delete(args.name)
    print(f"deleted index {args.name}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    service = service_from(args)
    result = service.classify(args.image, args.labels, args.template)
    for label, p in zip(result.labels, result.probabilities, strict=True):
        print(f"{p:7.2%}  {label}")
    return 0
