"""``models``: list profiles and availability, build tiny models, download, show status."""

from __future__ import annotations

import argparse
import json
import time

from mmdemo.profiles import BACKENDS, ON_REQUEST_BACKENDS, PROFILES

# what a bare ``download`` / ``status --load`` covers (the audio LLM only when named: ~16 GB)
BULK = tuple(b for b in BACKENDS if b not in ON_REQUEST_BACKENDS)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="model profiles, tiny builds, downloads, status")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = msub.add_parser("list", help="model id per backend for every profile, and if it is here")
    ls.set_defaults(func=cmd_list)
    bt = msub.add_parser("build-tiny", help="build the random-weight tiny models (offline)")
    bt.add_argument("names", nargs="*", help="which (default: all)")
    bt.add_argument("--force", action="store_true", help="rebuild even if cached")
    bt.set_defaults(func=cmd_build_tiny)
    st = msub.add_parser("status", help="what would load for each backend; --load to load them")
    st.add_argument("backends", nargs="*", choices=[[], *BACKENDS], help="default: all")
    st.add_argument("--load", action="store_true", help="load each and report memory and time")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)
    fm = msub.add_parser("families", help="the VLM families: model per profile, state, LoRA")
    fm.add_argument("--json", action="store_true", help="machine-readable output")
    fm.set_defaults(func=cmd_families)
    dl = msub.add_parser("download", help="fetch and prepare the active profile's models")
    dl.add_argument(
        "backends",
        nargs="*",
        help=f"default: all of {', '.join(BULK)} ({', '.join(ON_REQUEST_BACKENDS)}: when named)",
    )
    dl.set_defaults(func=cmd_download)


def cmd_list(args: argparse.Namespace) -> int:
    from mmdemo.cli import settings_from
    from mmdemo.models.sources import availability

    settings = settings_from(args)
    active = settings.resolved_profile
    print(f"active profile: {active}   home: {settings.home}")
    for backend in BACKENDS:
        print(f"\n{backend}:")
        for profile, ids in PROFILES.items():
            mid = ids[backend]
            mark = "*" if profile == active and not getattr(settings, backend) else " "
            ok, note = availability(backend, mid, settings)
            print(f"  {mark} {profile:5} {mid:40} {'ok ' if ok else 'n/a'} {note}")
        if getattr(settings, backend):
            mid = getattr(settings, backend)
            ok, note = availability(backend, mid, settings)
            print(f"  * set   {mid:40} {'ok ' if ok else 'n/a'} {note}")
    return 0


def cmd_build_tiny(args: argparse.Namespace) -> int:
    from mmdemo.cli import settings_from
    from mmdemo.models.tiny import TINY_MODELS, build_all

    settings = settings_from(args)
    names = tuple(args.names) or tuple(TINY_MODELS)
    unknown = [n for n in names if n not in TINY_MODELS]
    if unknown:
        print(f"unknown tiny model(s): {', '.join(unknown)}; known: {', '.join(TINY_MODELS)}")
        return 2
    start = time.perf_counter()
    for name, seconds in build_all(settings.models_dir, names, force=args.force).items():
        state = f"built in {seconds:.1f} s" if seconds else "cached"
        print(f"tiny:{name:8} {TINY_MODELS[name][1]:28} {state}")
    print(f"done in {time.perf_counter() - start:.1f} s -> {settings.models_dir / 'tiny'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from mmdemo.cli import settings_from
    from mmdemo.errors import MMDemoError
    from mmdemo.models.manager import ModelManager
    from mmdemo.models.sources import availability

    settings = settings_from(args)
    manager = ModelManager(settings)
    rows = []
    for backend in args.backends or (BULK if args.load else BACKENDS):
        mid = manager.model_id(backend)
        ok, note = availability(backend, mid, settings)
        row = {"backend": backend, "model": mid, "available": ok, "where": note}
        if args.load:
            try:
                loaded = manager.get_loaded(backend)
                status = next(s for s in manager.status() if s.backend == backend)
                row.update(
                    state="loaded",
                    device=loaded.device,
                    dtype=loaded.dtype,
                    params=loaded.params,
                    bytes=loaded.nbytes,
                    load_seconds=round(status.load_seconds, 3),
                )
            except MMDemoError as exc:
                row.update(state="error", error=str(exc))
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"profile {settings.resolved_profile}, home {settings.home}")
    for r in rows:
        line = f"{r['backend']:6} {r['model']:40} {'ok ' if r['available'] else 'n/a'} {r['where']}"
        if r.get("state") == "loaded":
            line += (
                f"\n       loaded on {r['device']} ({r['dtype']}), {r['params']:,} params, "
                f"{r['bytes'] / 2**20:.1f} MB, {r['load_seconds']} s"
            )
        elif r.get("state") == "error":
            line += f"\n       error: {r['error']}"
        print(line)
    return 0


def cmd_families(args: argparse.Namespace) -> int:
    """Every VLM family: its class, model for the active profile, tiny build and state."""
    from mmdemo.cli import settings_from
    from mmdemo.flows.families import family_states
    from mmdemo.models.manager import ModelManager

    settings = settings_from(args)
    rows = family_states(ModelManager(settings))
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    print(f"profile {settings.resolved_profile}; MMDEMO_VLM_FAMILY picks one (* = configured)")
    for r in rows:
        mark = "*" if r.selected else " "
        print(f"{mark} {r.key:11} {r.title:19} {r.architecture}")
        print(f"    model {r.model_id or '-'}   tiny {r.tiny_id or '-'}")
        print(f"    state {r.state}: {r.note}")
        print(f"    images on a CPU: {r.cpu_image_budget}")
        print(f"    LoRA targets: {', '.join(r.lora_targets)}")
        batch = "yes" if r.mixed_batch else f"no ({r.serial_reason})"
        print(f"    mixed-adapter batches: {batch}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Prepare models by loading them once through the normal loaders (downloads if needed)."""
    from mmdemo.cli import settings_from
    from mmdemo.errors import MMDemoError
    from mmdemo.models.manager import ModelManager

    settings = settings_from(args)
    manager = ModelManager(settings)
    failed = 0
    if not args.backends:
        print(f"skipping {', '.join(ON_REQUEST_BACKENDS)} (large; name it to download it)")
    for backend in args.backends or BULK:
        start = time.perf_counter()
        try:
            manager.get(backend)
            print(
                f"{backend:6} {manager.model_id(backend):40} ready ({time.perf_counter() - start:.1f} s)"
            )
        except MMDemoError as exc:
            failed += 1
            print(f"{backend:6} {manager.model_id(backend):40} FAILED: {exc}")
        finally:
            manager.unload(backend)
    return 1 if failed else 0
