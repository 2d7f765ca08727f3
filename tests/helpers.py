"""Small builders shared by tests: random LoRA adapters, images on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmdemo.finetune.random_adapter import TEXT_ATTENTION, random_adapter


def make_adapter(
    model: Any,
    out: Path,
    seed: int,
    family: str | None = "idefics3",
    kind: str = "lora",
    target: str = TEXT_ATTENTION,
    rank: int = 4,
    method: str | None = None,
    lora: dict[str, Any] | None = None,
    **meta: Any,
) -> Path:
    """Save a randomly initialised adapter for ``model`` (left untouched) into ``out``;
    ``lora`` passes alpha / use_rslora / lora_bias on; ``method`` (default: ``kind``) and
    ``meta`` go into its ``mmdemo.json``."""
    random_adapter(model, out, seed, kind, target, rank, **(lora or {}))
    if family:
        (Path(out) / "mmdemo.json").write_text(
            json.dumps(
                {
                    "base_model": f"test-{family}",
                    "base_model_type": family,
                    "method": method or kind,
                    "dataset": "random",
                    "metrics": {"accuracy": 0.5},
                    **meta,
                }
            )
        )
    return Path(out)


def save_image(path: Path, size: tuple[int, int] = (120, 90), color: str = "red") -> Path:
    from PIL import Image

    Image.new("RGB", size, color).save(path)
    return path


def make_bottleneck(model: Any, out: Path, seed: int, family: str = "idefics3") -> Path:
    """Save a random bottleneck adapter (the ``hooked`` kind PEFT cannot hold), in float32."""
    import copy

    import torch

    from mmdemo.finetune.targets import find_targets
    from mmdemo.models.adapters import write_metadata
    from mmdemo.models.bottleneck import BottleneckConfig, BottleneckSet, hidden_size_of

    host = copy.deepcopy(model).float()
    config = BottleneckConfig(find_targets(host, "language").mlp_blocks, hidden_size_of(host), 16)
    adapters = BottleneckSet(host)
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in adapters.add("b", config):
            p.add_(torch.randn_like(p) * 0.5)
    adapters.save("b", Path(out))
    write_metadata(Path(out), {"base_model_type": family, "method": "bottleneck"})
    return Path(out)


def home_for(settings: Any, folder: Path, **changes: Any) -> Any:
    """``settings`` with an empty data folder of its own that shares the tiny model builds."""
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "tiny").symlink_to(settings.models_dir / "tiny")
    return settings.replace(home=folder, **changes)


class FakeHub:
    """Stands in for ``huggingface_hub.snapshot_download``: each repo is a local folder, every
    revision of it is ``commit``; records each call. It honours ``allow_patterns`` and
    ``dry_run`` as the real one does, and leaves the Hub's ``.cache`` folder in ``local_dir``."""

    commit = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        allow_patterns: list[str] | None = None,
        local_dir: Any = None,
        dry_run: bool = False,
        **_: Any,
    ) -> Any:
        import fnmatch
        import shutil

        from huggingface_hub.file_download import DryRunFileInfo

        self.calls.append(
            {"repo": repo_id, "revision": revision, "patterns": allow_patterns, "dry_run": dry_run}
        )
        if repo_id not in self.repos:
            raise FileNotFoundError(f"404 Client Error: repository {repo_id} not found")
        files = [
            p
            for p in sorted(self.repos[repo_id].iterdir())
            if p.is_file()
            and (allow_patterns is None or any(fnmatch.fnmatch(p.name, a) for a in allow_patterns))
        ]
        if dry_run:
            return [
                DryRunFileInfo(self.commit, p.stat().st_size, p.name, "", False, True)
                for p in files
            ]
        out = Path(local_dir)
        (out / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        for p in files:
            shutil.copyfile(p, out / p.name)
        return str(out)

    def downloads(self) -> list[dict[str, Any]]:
        """The calls that fetched files (not the dry runs)."""
        return [c for c in self.calls if not c["dry_run"]]


def fake_hub(monkeypatch: Any, repos: dict[str, Path]) -> FakeHub:
    """Route the Hub downloads of this test to ``FakeHub(repos)`` (the network is never
    touched: the reachability probe answers yes without connecting)."""
    import huggingface_hub

    from mmdemo.models import hub

    fake = FakeHub(repos)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: (True, ""))
    return fake


def stop_one_of_two(
    chat: Any, text: str, image: Path, stopped: str, kept: str, gen: Any
) -> tuple[Any, Any]:
    """Two users in one batch of two: the first (adapter ``stopped``) presses Stop once its
    first piece arrives, the second (``kept``) reads its answer to the end. Returns both
    final updates (stopped, kept)."""
    import threading

    from mmdemo.flows.chat import ChatSession

    chat.engine.batch_window_s, chat.engine.batch_max_rows = 600.0, 2
    barrier = threading.Barrier(2)
    finals: dict[str, Any] = {}

    def stopper() -> None:
        stop = threading.Event()
        barrier.wait()
        stream = chat.stream(ChatSession(), text, [image], stopped, gen, stop)
        next(stream)  # the first token arrived
        stop.set()
        finals["stopped"] = list(stream)[-1]

    def reader() -> None:
        barrier.wait()
        finals["kept"] = list(chat.stream(ChatSession(), text, [image], kept, gen))[-1]

    threads = [threading.Thread(target=stopper), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return finals["stopped"], finals["kept"]


def chaotic_build(models_dir: Path, name: str, tiny: str, make: Any, staging_root: Path) -> Path:
    """A copy of tiny build ``tiny`` whose weights ``make(config)`` re-creates (larger random
    weights: answers that differ per prompt), saved once as ``models_dir / name`` (staged,
    then renamed: a concurrent or crashed build never leaves half a folder)."""
    import os
    import shutil

    from transformers import AutoConfig

    from mmdemo.models.tiny import ensure_built

    folder = models_dir / name
    if not (folder / "model.safetensors").is_file():
        source = ensure_built(tiny, models_dir)
        staging = staging_root / name
        shutil.copytree(source, staging)
        make(AutoConfig.from_pretrained(source)).save_pretrained(staging)
        shutil.rmtree(folder, ignore_errors=True)
        fresh = folder.with_name(f".{name}-new")
        shutil.copytree(staging, fresh, dirs_exist_ok=True)
        os.replace(fresh, folder)
    return folder


def together(chat: Any, jobs: list[tuple], gens: list | None = None) -> list:
    """Ask ``jobs`` (adapter, text, image) from one thread per user, all at once (``gens``:
    each user's generation settings; default greedy, 16 tokens); the final update of each."""
    import threading

    from mmdemo.flows.chat import ChatSession
    from mmdemo.flows.generation import GenerationSettings

    results: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def user(i: int, adapter: str, text: str, image: Path) -> None:
        try:
            barrier.wait()
            gen = gens[i] if gens else GenerationSettings(max_new_tokens=16, greedy=True)
            results[i] = list(chat.stream(ChatSession(), text, [image], adapter, gen))[-1]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(i, *job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [results[i] for i in range(len(jobs))]
