"""Decode the text LLM with OpenVINO on a CPU: every token after the prompt is one step of the
model compiled by OpenVINO, its KV cache kept inside the runtime, behind transformers' own
``generate``.

The step is traced once per model by models/ov_export.py in a child process (see there why)
and saved under the models folder. The prompt is prefilled by the torch model (causal
attention over many tokens is already fast there), its KV cache copied into the OpenVINO
state, and each further token is one OpenVINO request. ``generate(custom_generate=...)``
(transformers' public hook for a decoding loop) still builds the logits processors, stopping
criteria and streamer, so the repetition penalty, sampling, end of turn and Stop behave as on
the torch path.

Why not optimum-intel + openvino-genai, the usual route: optimum-intel 2.2 (the exporter whose
IR openvino-genai's pipelines read) pins transformers<5.6 and fails to import with the 5.2x the
app runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from mmdemo.errors import MMDemoError

ROUTES = ("auto", "eager", "openvino")


class DecodeUnavailableError(MMDemoError):
    """The OpenVINO decode route cannot serve this model here."""


def openvino_version() -> str | None:
    """The installed OpenVINO's version, read without importing it (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("openvino")
    except PackageNotFoundError:
        return None


TELEMETRY_FILE = Path("intel") / "openvino_telemetry"  # under the user's home


def telemetry_off() -> str:
    """Make sure OpenVINO sends no usage telemetry unasked before it is imported: '' when it
    will not (or the user opted in), else why it might.

    OpenVINO's Python package reports usage (from a forked copy of the process, to Google
    Analytics) when it is imported and when it converts a model, unless the consent file its
    own opt-out tool writes (``~/intel/openvino_telemetry``, "0") says no. A server must not
    phone home unasked, nor fork: this writes that file when there is none (an existing answer
    is the user's and is kept)."""
    path = Path.home() / TELEMETRY_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("0", encoding="utf-8")
        answer = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return f"OpenVINO's telemetry opt-out file {path} could not be written ({exc})"
    if answer not in ("0", "1"):
        return f"{path} holds neither OpenVINO's opt-out (0) nor opt-in (1)"
    return ""  # "1": the user opted in with OpenVINO's own tool


def supported(model: Any) -> str:
    """Why ``model`` cannot take the OpenVINO route ('' when it can)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if openvino_version() is None:
        return "OpenVINO is not installed (pip install openvino)"
    if str(getattr(model, "device", "cpu")) != "cpu":
        return "the model is not on the CPU"
    layers = DynamicCache(config=model.config).layers
    if not layers or any(type(layer) is not DynamicLayer for layer in layers):
        return "the model's KV cache is not one plain layer per block (sliding windows?)"
    return telemetry_off()  # last: only where OpenVINO will really be imported


def cache_key(model: Any, source: Path | None, kind: tuple[bool, tuple[str, ...]]) -> str:
    """What the saved step depends on: the model's config and files, the converters, the code
    that traced it and the step's kind (rows, LoRA leaves)."""
    import transformers

    from mmdemo.models import ov_export

    parts = {
        "exporter": hashlib.sha256(Path(ov_export.__file__).read_bytes()).hexdigest(),
        "config": model.config.to_json_string(use_diff=False),
        "class": type(model).__name__,
        "kind": [kind[0], list(kind[1])],
        "openvino": openvino_version(),
        "transformers": transformers.__version__,
        "files": sorted(
            (p.name, p.stat().st_size, int(p.stat().st_mtime))
            for p in (source.glob("*.safetensors") if source else ())
        ),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_step(
    model: Any,
    cache_dir: Path,
    source: Path | None,
    trust_remote_code: bool = False,
    rows: bool = False,
    lora: tuple[str, ...] = (),
) -> Any:
    """The step model (``rows``, ``lora``: see ov_export.export_step), read from ``cache_dir``
    when exported before, else exported there by a child process (into a temporary folder,
    then renamed: a crash never leaves half an IR; a damaged one is exported again)."""
    import openvino as ov

    # one folder per model (by where it was read from) and kind of step, named by everything
    # it depends on
    where = source.resolve() if source is not None else type(model).__name__  # links followed
    kind = (rows, tuple(lora))
    owner = hashlib.sha256(f"{where}|{kind}".encode()).hexdigest()[:8]
    folder = cache_dir / f"{owner}-{cache_key(model, source, kind)}"
    xml = folder / "step.xml"
    if xml.is_file():
        try:
            return ov.Core().read_model(xml)
        except RuntimeError:
            shutil.rmtree(folder, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".step-", dir=cache_dir))
    try:
        export_in_child(model, source, tmp, cache_dir, trust_remote_code, rows, lora)
        with contextlib.suppress(OSError):  # another process saved it first
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for stale in cache_dir.glob(f"{owner}-*"):  # the same model's steps by older code
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return ov.Core().read_model(xml)


def export_in_child(
    model: Any,
    source: Path | None,
    out: Path,
    cache_dir: Path,
    trust_remote_code: bool,
    rows: bool = False,
    lora: tuple[str, ...] = (),
) -> None:
    """``python -m mmdemo.models.ov_export`` on the model's folder (a model with none is saved
    to ``out`` first), with a HOME whose OpenVINO consent file opts out of telemetry."""
    import subprocess
    import sys

    home = cache_dir / ".openvino-home"
    consent = home / "intel" / "openvino_telemetry"
    consent.parent.mkdir(parents=True, exist_ok=True)
    consent.write_text("0", encoding="utf-8")  # OpenVINO's opt-out: "0" in this file
    if source is None:
        source = out / "model"
        model.save_pretrained(source)
    package_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "mmdemo.models.ov_export", str(source), str(out)]
    cmd += ["--cls", type(model).__name__]
    if trust_remote_code:
        cmd.append("--trust-remote-code")
    if rows:
        cmd.append("--rows")
    if lora:
        cmd += ["--lora", ",".join(lora)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    shutil.rmtree(out / "model", ignore_errors=True)
    if done.returncode != 0 or not (out / "step.xml").is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise DecodeUnavailableError(
            f"tracing the model's decode step for OpenVINO failed: {' '.join(tail)}",
            fix="set MMDEMO_DECODE=eager",
        )


class OpenVINODecoder:
    """A compiled step for one loaded model, and the decoding loop ``generate`` calls: one row
    (the text LLM), or (``rows``) several with their padding masks and, with ``lora``, each
    row's LoRA adapter as inputs (see ov_export.export_step)."""

    def __init__(
        self,
        model: Any,
        cache_dir: Path,
        source: Path | None = None,
        trust_remote_code: bool = False,
        rows: bool = False,
        lora: tuple[str, ...] = (),
    ) -> None:
        import numpy as np
        import openvino as ov
        import torch
        from openvino.preprocess import PrePostProcessor

        self.model = model
        precision = "bf16" if model.dtype == torch.bfloat16 else "f32"
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            # the cache in the model's own precision (the CPU default compresses it to u8,
            # which changes answers)
            "KV_CACHE_PRECISION": precision,
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        step = load_step(model, cache_dir, source, trust_remote_code, rows, lora)
        if lora and precision == "bf16":  # the rows' adapters handed over in bf16, not
            prep = PrePostProcessor(step)  # converted from f32 on every step
            for port in step.inputs:
                if port.get_any_name().startswith("lora."):
                    prep.input(port.get_any_name()).tensor().set_element_type(ov.Type.bf16)
            step = prep.build()
        self.compiled = ov.Core().compile_model(step, "CPU", config)
        self.precision = precision
        self.rows = rows
        self.lora = tuple(lora)
        self.lora_inputs = [
            p.get_any_name() for p in self.compiled.inputs if p.get_any_name().startswith("lora.")
        ]
        self.beam = np.zeros(1, dtype=np.int32)
        self.steps = 0  # OpenVINO steps run, all answers together (the System tab, tests)
        self._lock = threading.Lock()

    def generate_kwargs(self, input_ids: Any) -> dict[str, Any]:
        """What to add to ``generate``: the OpenVINO loop (a one-row step: for one-row prompts
        only; several rows stay on the torch loop)."""
        if input_ids.shape[0] == 1 or self.rows:
            return {"custom_generate": self.decode}
        return {}

    def decode(
        self,
        model: Any,
        input_ids: Any,
        logits_processor: Any,
        stopping_criteria: Any,
        generation_config: Any,
        synced_gpus: bool = False,
        streamer: Any = None,
        loop_streamer: Any = None,
        lora: dict[str, Any] | None = None,
        **model_kwargs: Any,
    ) -> Any:
        """transformers' greedy/sampling loop with every step after the prompt in OpenVINO
        (``loop_streamer``: generate's streamer, which transformers 5.2x does not pass on to
        a callable loop; flows.generation.run_generation gives it under this name; ``lora``:
        the rows' adapter inputs, from models.ov_rows)."""
        import numpy as np
        import openvino as ov
        import torch
        from transformers import DynamicCache

        rows, length = input_ids.shape
        if rows != 1 and not self.rows:
            raise DecodeUnavailableError("this OpenVINO step answers one prompt at a time")
        streamer = streamer or loop_streamer
        cache = model_kwargs.pop("cache", None)
        cache = model_kwargs.pop("past_key_values", None) if cache is None else cache
        cache = cache if cache is not None else DynamicCache(config=model.config)
        seen = cache.get_seq_length()
        mask = model_kwargs.get("attention_mask")  # None: no padding (generate drops all-ones)
        mask = mask if mask is not None else torch.ones(rows, length, dtype=torch.long)
        # positions as generate gives them (padding skipped), for the whole prompt
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        model_kwargs["position_ids"] = positions
        with torch.inference_mode():  # the prompt (images included) by the torch model
            inputs = model.prepare_inputs_for_generation(
                input_ids,
                next_sequence_length=length - seen if seen else None,
                cache=cache,
                is_first_iteration=True,
                **model_kwargs,
            )
            out = model(**inputs, return_dict=True)
        logits = out.logits[:, -1].to(dtype=torch.float32)
        with self._lock:  # creating requests on one compiled model from several threads
            request = self.compiled.create_infer_request()
        states = {s.name: s for s in request.query_state()}
        for i, layer in enumerate(cache.layers):
            for kind, tensor in (("key", layer.keys), ("value", layer.values)):
                name = f"past.{i}.{kind}present.{i}.{kind}"
                states[name].state = ov.Tensor(tensor.float().contiguous().numpy())
        for name, tensor in (lora or {}).items():
            request.set_tensor(name, tensor)
        del out, cache, inputs
        token_in = np.zeros((rows, 1), dtype=np.int64)
        position_in = positions[:, -1:].numpy() + 1
        feed = {"input_ids": token_in, "position_ids": position_in}
        feed["beam_idx"] = np.arange(rows, dtype=np.int32)
        seen_mask = mask.numpy()
        logits_out = request.get_tensor("logits")
        pad = generation_config.pad_token_id
        unfinished = torch.ones(rows, dtype=torch.bool)
        while True:
            scores = logits_processor(input_ids, logits)
            if generation_config.do_sample:
                probs = torch.softmax(scores, dim=-1)
                token = torch.multinomial(probs, num_samples=1).squeeze(1)
            else:
                token = torch.argmax(scores, dim=-1)
            if pad is not None:  # rows that ended get padding, as transformers' loop does
                token = torch.where(unfinished, token, torch.tensor(pad))
            input_ids = torch.cat([input_ids, token[:, None]], dim=-1)
            if streamer is not None:
                streamer.put(token)
            unfinished &= ~stopping_criteria(input_ids, scores)
            if not bool(unfinished.any()):
                break
            token_in[:, 0] = token.numpy()
            if self.rows:
                seen_mask = np.concatenate([seen_mask, np.ones((rows, 1), np.int64)], axis=1)
                feed["attention_mask"] = seen_mask
            request.infer(feed, share_inputs=True)
            logits = torch.from_numpy(logits_out.data.copy())
            position_in += 1
            self.steps += 1
        if streamer is not None:
            streamer.end()
        return input_ids


def takes_route(model: Any, route: str) -> bool:
    """Whether ``model`` decodes on OpenVINO under ``route`` (``auto``: where it can serve;
    ``openvino``: or a clear error saying why not; ``eager``: never)."""
    if route not in ROUTES:
        raise DecodeUnavailableError(
            f"decode route {route!r} is not one of {', '.join(ROUTES)}",
            fix="set MMDEMO_DECODE=auto",
        )
    if route == "eager":
        return False
    why = supported(model)
    if why and route == "openvino":
        raise DecodeUnavailableError(
            f"the OpenVINO decode route cannot serve this model: {why}",
            fix="set MMDEMO_DECODE=eager (or auto)",
        )
    return not why


def decoder_for(
    model: Any,
    route: str,
    cache_dir: Path,
    source: Path | None,
    trust_remote_code: bool = False,
) -> Any:
    """The one-row OpenVINO decoder for ``model`` (the text LLM) when ``route`` takes it
    (see ``takes_route``), else None."""
    if not takes_route(model, route):
        return None
    return OpenVINODecoder(model, cache_dir, source, trust_remote_code)
