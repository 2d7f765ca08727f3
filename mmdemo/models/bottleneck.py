"""Bottleneck adapters in the LLM-Adapters style: a small down-projection, a non-linearity and
an up-projection beside (parallel) or after (series) each MLP block of the language model.

Written here because no maintained package fits: PEFT has no bottleneck adapters and cannot
register a new method type without editing its ``PeftType`` enum, and AdapterHub's `adapters`
pins an older transformers. The on-disk layout mirrors PEFT's (``adapter_config.json`` with
``peft_type: BOTTLENECK`` + ``adapter_model.safetensors``) so the adapter store reads it like
any adapter; the runtime attaches them with forward hooks, so the module names that LoRA
adapters target are unchanged.

The one implementation: training (``finetune/methods/bottleneck.py``, which only prepares and
saves through ``BottleneckSet``) and serving (``models/lora.py``) both use this module.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmdemo.errors import AdapterError

PEFT_TYPE = "BOTTLENECK"
CHILD = "mmdemo_bottleneck"  # the ModuleDict each host MLP gets, one entry per adapter
CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class BottleneckConfig:
    hosts: tuple[str, ...]  # module names of the MLP blocks the adapters sit on
    hidden_size: int  # the language model's width
    size: int = 64  # bottleneck width
    placement: str = "parallel"  # parallel: mlp(x) + s*up(act(down(x))); series: on mlp's output
    scaling: float = 1.0
    peft_type: str = PEFT_TYPE

    def save(self, folder: Path) -> None:
        data = asdict(self)
        data["hosts"] = list(self.hosts)
        (Path(folder) / CONFIG).write_text(json.dumps(data, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> BottleneckConfig:
        try:
            data = json.loads((Path(folder) / CONFIG).read_text(encoding="utf-8"))
            return cls(
                hosts=tuple(data["hosts"]),
                hidden_size=int(data["hidden_size"]),
                size=int(data["size"]),
                placement=str(data["placement"]),
                scaling=float(data.get("scaling", 1.0)),
            )
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise AdapterError(f"bad bottleneck adapter config in {folder}: {exc}") from None


def _module(config: BottleneckConfig) -> Any:
    import torch

    class Bottleneck(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = torch.nn.Linear(config.hidden_size, config.size)
            self.up = torch.nn.Linear(config.size, config.hidden_size)
            torch.nn.init.zeros_(self.up.weight)  # starts as the identity
            torch.nn.init.zeros_(self.up.bias)

        def forward(self, x: Any) -> Any:
            return self.up(torch.nn.functional.silu(self.down(x))) * config.scaling

    return Bottleneck()


class BottleneckSet:
    """Bottleneck adapters on one model: add (fresh or from disk), activate one, remove."""

    def __init__(self, model: Any):
        self.model = model
        self.configs: dict[str, BottleneckConfig] = {}
        # adapter name -> key in the hosts' ModuleDicts (names may hold '.' or collide with
        # nn.Module attributes such as 'training', which ModuleDict keys cannot)
        self.keys: dict[str, str] = {}
        self.active: str | None = None
        self._hooks: dict[str, Any] = {}
        self._counter = 0

    def add(self, name: str, config: BottleneckConfig, folder: Path | None = None) -> list[Any]:
        """Attach adapter ``name`` (weights from ``folder``, else freshly initialised); returns
        its parameters."""
        import torch

        modules = dict(self.model.named_modules())
        missing = [h for h in config.hosts if h not in modules]
        if missing:
            raise AdapterError(
                f"bottleneck adapter {name!r} sits on {missing[0]}, which this model lacks",
                fix="use an adapter trained on this base model",
            )
        first = modules[config.hosts[0]]
        param = next(first.parameters())
        created = {}
        for host in config.hosts:
            block = modules[host]
            if not hasattr(block, CHILD):
                block.add_module(CHILD, torch.nn.ModuleDict())
            created[host] = _module(config).to(device=param.device, dtype=param.dtype)
        if folder is not None:
            _load_weights(created, Path(folder), config)
        self.remove(name)
        self._counter += 1
        key = self.keys[name] = f"adapter{self._counter}"
        for host, adapter in created.items():
            getattr(modules[host], CHILD)[key] = adapter
            if host not in self._hooks:
                self._hooks[host] = modules[host].register_forward_hook(self._hook)
        self.configs[name] = config
        return [p for a in created.values() for p in a.parameters()]

    def _hook(self, module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
        name = self.active
        key = self.keys.get(name or "")
        if key is None or key not in getattr(module, CHILD, {}):
            return None
        adapter = getattr(module, CHILD)[key]
        placement = self.configs[name].placement
        return output + adapter(inputs[0] if placement == "parallel" else output)

    def activate(self, name: str | None) -> None:
        if name is not None and name not in self.configs:
            raise AdapterError(f"bottleneck adapter {name!r} is not loaded")
        self.active = name

    def remove(self, name: str) -> None:
        config, key = self.configs.pop(name, None), self.keys.pop(name, None)
        if config is None or key is None:
            return
        modules = dict(self.model.named_modules())
        for host in config.hosts:
            children = getattr(modules.get(host), CHILD, None)
            if children is not None and key in children:
                del children[key]
        if self.active == name:
            self.active = None

    def save(self, name: str, folder: Path) -> None:
        from safetensors.torch import save_file

        config = self.configs[name]
        modules = dict(self.model.named_modules())
        tensors = {}
        for host in config.hosts:
            adapter = getattr(modules[host], CHILD)[self.keys[name]]
            for key, value in adapter.state_dict().items():
                tensors[f"{host}.{key}"] = value.detach().float().contiguous().cpu()
        Path(folder).mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(Path(folder) / WEIGHTS))
        config.save(folder)


def _load_weights(created: dict[str, Any], folder: Path, config: BottleneckConfig) -> None:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(folder / WEIGHTS))
    except Exception as exc:
        raise AdapterError(f"{WEIGHTS} in {folder} is not valid safetensors: {exc}") from None
    for host, adapter in created.items():
        own = {
            k.removeprefix(host + "."): v for k, v in tensors.items() if k.startswith(host + ".")
        }
        try:
            adapter.load_state_dict(own, strict=True)
        except RuntimeError as exc:
            raise AdapterError(
                f"bottleneck weights for {host} do not fit (hidden size {config.hidden_size}, "
                f"width {config.size}): {str(exc).splitlines()[0]}",
                fix="use an adapter trained on this base model",
            ) from None


def check_fits(config: BottleneckConfig, model: Any, name: str, made_for: str = "") -> None:
    """Refuse adapter ``name`` when ``model`` lacks a block it sits on or has another width
    (``made_for``: the base model it was trained on, for the message)."""
    modules = dict(model.named_modules())
    missing = [h for h in config.hosts if h not in modules]
    if missing:
        raise AdapterError(
            f"adapter {name!r} sits on '{missing[0]}', which the loaded model does not have "
            f"(it was made for {made_for or 'another model'})",
            fix="use an adapter trained on this base model",
        )
    width = hidden_size_of(model)
    if config.hidden_size != width:
        raise AdapterError(
            f"adapter {name!r} expects a language model {config.hidden_size} wide; the "
            f"loaded one is {width} wide",
            fix="use an adapter trained on this base model",
        )


def hidden_size_of(model: Any) -> int:
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text.hidden_size)
